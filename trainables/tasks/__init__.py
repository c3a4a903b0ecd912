"""The task registry: kind -> the `Task` record (options, loader, metrics, default space, predict, usage).

The same dict feeds config validation, `orchestrator list`, the end-of-run summary, exported models'
`predict` and the parametrized tests, so a new task is one module with a `TASK` record, added below.
No torch is imported here: configs are validated and runs read without it.
"""

from __future__ import annotations

from trainables.constants import VAL_LOSS
from trainables.tasks import charlm, custom, forecast, tabular
from trainables.tasks.base import DataError, ModelSpec, Split, Task, TaskBase, TaskData

TASKS: dict[str, Task] = {t.name: t for t in (charlm.TASK, forecast.TASK, tabular.TASK, custom.TASK)}


def metric_modes() -> dict[str, str]:
    """Every metric a run can be ranked by -> "min" | "max": the validation loss and each task's metrics."""
    modes = {VAL_LOSS: "min"}
    for task in TASKS.values():
        modes.update(task.metrics)
    return modes


__all__ = ["TASKS", "Task", "TaskBase", "TaskData", "ModelSpec", "Split", "DataError", "metric_modes"]
