"""The schedulers a search can use, one record each: its options, its builder, its help line.

A scheduler decides *when to stop* a trial; it never sees the search space. To add one, add its options
model (with `kind: Literal[...]`) and a `Scheduler` record to SCHEDULERS: validation, `orchestrator list`,
the run header, the report and the parametrized tests pick it up from there. Ray is imported inside the
builders, so validating a config stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional

from pydantic import Field, model_validator

from orchestrator.schema import Strict


class SchedulerOptions(Strict):
    """Options every scheduler has: `max_epochs` is also where every trial stops."""

    max_epochs: int = Field(10, ge=1)


class AshaOptions(SchedulerOptions):
    kind: Literal["asha"] = "asha"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)

    @model_validator(mode="after")
    def grace_within_max(self):
        if self.grace_period > self.max_epochs:
            raise ValueError(f"`grace_period <= max_epochs` must hold, but got ({self.grace_period=}, {self.max_epochs=})")
        return self


class FifoOptions(SchedulerOptions):
    kind: Literal["fifo"]


def _asha(opts: AshaOptions):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration", max_t=opts.max_epochs, grace_period=opts.grace_period, reduction_factor=opts.reduction_factor
    )


def _fifo(opts: FifoOptions):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


@dataclass(frozen=True)
class Scheduler:
    """A scheduler: its options model, how to build Ray's scheduler from them, and how to describe them.

    `describe` takes a mapping (the options as dumped into a run's experiment.yaml), so that readers of a
    finished run describe it without rebuilding the config. `searchers`: the searchers it works with
    (None: every one); a pairing outside it is refused at validation with `pairing_rule`.
    """

    name: str
    options: type[SchedulerOptions]
    build: Callable[[Any], Any]
    help: str
    describe: Callable[[Mapping[str, Any]], str]
    searchers: Optional[frozenset[str]] = None
    pairing_rule: str = ""


SCHEDULERS: dict[str, Scheduler] = {
    "asha": Scheduler(
        "asha", AshaOptions, _asha,
        "asynchronous successive halving: stops the worst trials at rungs grace_period * reduction_factor^k (default)",
        lambda o: f"asha (max {o['max_epochs']} epochs, grace {o['grace_period']}, x{o['reduction_factor']:g})",
    ),
    "fifo": Scheduler(
        "fifo", FifoOptions, _fifo, "no early stopping: every trial runs max_epochs",
        lambda o: f"fifo (max {o['max_epochs']} epochs)",
    ),
}
DEFAULT_SCHEDULER = "asha"
