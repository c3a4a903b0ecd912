"""The task registry: name -> how to load it and what kind of input its models get.

The same dict feeds config validation, `orchestrator list` and the parametrized tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from trainables.tasks import charlm, forecast, tabular
from trainables.tasks.base import DataError, ModelSpec, Split, TaskData


@dataclass(frozen=True)
class Task:
    """A registered task: its loader, the input kind its models receive, and a one-line description."""

    load: Callable[..., TaskData]
    input_kind: str
    description: str


TASKS: dict[str, Task] = {
    "charlm": Task(charlm.load, "tokens", "next-character language model; metric val_bpc (bits per character)"),
    "forecast": Task(forecast.load, "sequence", "next-step time-series forecast from a CSV; metric val_rmse"),
    "tabular": Task(tabular.load, "vector", "classification / regression on a CSV; metric val_accuracy or val_rmse"),
}

__all__ = ["TASKS", "Task", "TaskData", "ModelSpec", "Split", "DataError"]
