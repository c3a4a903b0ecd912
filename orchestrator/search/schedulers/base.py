"""The base every scheduler shares: the options all of them have, the record that registers one, and the rungs
of successive halving (ASHA's, HyperBand's and the budget plan's). Ray-free, so that validating an experiment
and reading a run stay fast."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from pydantic import Field

from orchestrator.experiment.schema import Strict

EPOCHS = "training_iteration"  # every scheduler counts time in epochs (one `step` of the trainable)


class SchedulerOptions(Strict):
    """Options every scheduler has: `max_epochs` is also where every trial stops."""

    max_epochs: int = Field(10, ge=1)



def rungs(max_epochs: int, grace_period: int, reduction_factor: float) -> list[int]:
    """The epochs at which ASHA compares trials, max_epochs included (its rule: grace * rf^k below max_t; a
    fractional factor's rungs rounded up to whole epochs)."""
    out: list[int] = []
    k = 0
    while (r := math.ceil(grace_period * reduction_factor**k - 1e-9)) < max_epochs:
        if not out or r > out[-1]:
            out.append(r)
        k += 1
    return out + [max_epochs]



def epochs_per_trial(max_epochs: int, grace_period: int, reduction_factor: int, asha: bool = True, done: int = 0) -> float:
    """The expected epochs a trial runs (after the `done` it has run): under ASHA a trial passes each rung with
    probability 1/rf; one between two rungs reaches the next for sure."""
    if not asha:
        return float(max(0, max_epochs - done))
    marks = rungs(max_epochs, grace_period, reduction_factor)
    expected, before, chance = 0.0, 0, 1.0
    for mark in marks:
        if mark > done:
            expected += (mark - max(before, done)) * chance
        if mark >= done:
            chance /= reduction_factor  # past this rung only the best 1/rf go on
        before = mark
    return expected


@dataclass(frozen=True)
class Scheduler:
    """A scheduler: its options model, how to build Ray's scheduler from them, and how to describe them.

    `build(options, space, searcher)` (the searcher's record) returns a Ray TrialScheduler whose state survives a resume
    (`orchestrator.search.schedulers.resumable`); `problem(space)`: why it cannot work on that space, or None.
    `own_population`: the scheduler evolves trials itself from a random population, which Ray's own generator
    supplies (Ray refuses a Searcher beside PBT).

    `describe` takes a mapping (the options as dumped into a run's experiment.yaml), so that readers of a
    finished run describe it without rebuilding the config. `searchers`: the searchers it works with
    (None: every one); a pairing outside it is refused at validation with `pairing_rule`.
    """

    name: str
    options: type[SchedulerOptions]
    build: Callable[..., Any]
    help: str
    describe: Callable[[Mapping[str, Any]], str]
    searchers: Optional[frozenset[str]] = None
    pairing_rule: str = ""
    problem: Callable[[Any], Optional[str]] = lambda space: None
    own_population: bool = False
    # The budget plan sizes its rungs (grace_period, reduction_factor) as well as max_epochs; otherwise the plan
    # expects every trial to run max_epochs.
    plans_rungs: bool = False
    # Trials that must run together for the scheduler to act at all (its options as a mapping); None: any number.
    together: Optional[Callable[[Mapping[str, Any]], int]] = None
    # The epochs a trial that has run `epoch` epochs is still expected to run (its options as a mapping; 0 for a
    # trial not started): what the progress view's time left counts in. Without early stopping, the rest up to
    # max_epochs; a scheduler that stops trials says how many it keeps.
    epochs_left: Callable[[Mapping[str, Any], int], float] = lambda o, epoch: float(max(0, o["max_epochs"] - epoch))

    def expected_epochs(self, options: Mapping[str, Any]) -> float:
        """The epochs a new trial is expected to run."""
        return self.epochs_left(options, 0)

    def concurrency_note(self, options: Mapping[str, Any], concurrency: int) -> Optional[str]:
        """Why this scheduler would stop no trial at `concurrency` trials at once, or None."""
        need = self.together(options) if self.together else 1
        if concurrency >= need:
            return None
        return (f"{self.name} acts on {need} trials running together, but {concurrency} run at once (max_concurrent and the "
                f"resources), so it stops or exploits no trial and runs like fifo; raise max_concurrent to {need}, or use asha")


