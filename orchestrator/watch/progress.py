"""A compact progress view, printed instead of Ray's raw log stream.

One line per finished trial and a status line at most every `interval` seconds: trials running (paused) / done /
stopped early / failed, the best so far with its family and key hyperparameters, elapsed time and an
estimate of the time left (`eta.TimeLeft`, from the books kept here). Plain lines (no cursor tricks) so it reads the same in a terminal, a CI log or a Ray Job's log.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from ray.tune import Callback

from orchestrator.reading import results as R
from orchestrator.watch.console import clock, describe
from orchestrator.watch.eta import TimeLeft
from trainables import constants as C
from trainables.rows import epoch_began, usable_value
from trainables.trial import family_of


class Progress(TimeLeft, Callback):
    """Counts trial outcomes as Tune reports them and prints the compact view."""

    def __init__(self, metric: str, mode: str, num_samples: int, max_epochs: int, *, interval: float = 10.0, out: TextIO | None = None,
                 expected_s: float | None = None, scheduler: tuple[str, dict] | None = None, workers: int = 1):
        self.metric, self.mode, self.num_samples, self.max_epochs = metric, mode, num_samples, max_epochs
        self.workers = max(1, workers)  # trials that run at once: the time left schedules the work left over them
        # (kind, options) of the scheduler: how many epochs a trial is still expected to run (`Scheduler.epochs_left`).
        self.scheduler = scheduler or ("fifo", {"max_epochs": max_epochs})
        # A budgeted search's time budget: the time budget ends it (its trial count is only a ceiling), so the ETA
        # counts down to it and the trial count has no denominator.
        self.expected_s = expected_s
        self.interval, self.out = interval, out  # None: sys.stdout at print time (the callback is pickled)
        self._reset()

    def setup(self, **info):
        self._reset()  # also after a resume, when this callback comes back from the saved experiment

    def _reset(self) -> None:
        self.started = time.monotonic()
        self.last_print = 0.0
        self.last: dict[str, dict] = {}  # trial_id -> last result
        self.epochs: list[float] = []  # wall time each epoch reported in this session ended, in order
        self.seconds: list[float] = []  # the same epochs' own seconds (time_this_iter_s)
        self.runs: dict[str, list[float]] = {}  # trial id -> seconds of each epoch it ran, trials in the order they began
        self.reported: dict[str, float] = {}  # trial id -> wall time its last epoch ended
        self.family: dict[str, str] = {}  # trial id -> its model family
        self.resumed: dict[str, float] = {}  # trial id -> wall time it last left a rung, promoted
        self.values: dict[str, list[float]] = {}  # trial id -> its value after each epoch it ran (higher is better)
        self.said_end: tuple[float, float] | None = None  # (wall time, end of the search) the status line said last
        self.busy: list[tuple[float, float]] = []  # (wall time, worker-seconds taken by running trials until then)
        self.first_began: float | None = None  # wall time the first of them began
        self.at: dict[str, int] = {}  # trial id -> epochs it has run, for the trials not ended yet
        self.running: set[str] = set()
        self.starting: dict[str, float] = {}  # trial id -> wall time it started, until it reports its first epoch
        self.paused: set[str] = set()  # waiting at a scheduler's rung (HyperBand, promoting ASHA), as of the last step
        self.done = self.early = self.failed = self.diverged = self.infeasible = 0
        self.best: tuple[float, str, str] | None = None  # (value, trial_id, description)
        self.adopted: int | None = None  # trials that had ended before a resume; None until the first step

    def _say(self, line: str) -> None:
        print(f"[{clock(time.monotonic() - self.started)}] {line}", file=self.out or sys.stdout, flush=True)

    def _better(self, value: float) -> bool:
        return self.best is None or (value < self.best[0] if self.mode == "min" else value > self.best[0])

    def on_step_begin(self, iteration, trials, **info):
        if self.adopted is None:
            self._adopt(trials)

    def _adopt(self, trials) -> None:
        """After a resume, trials that ended before the interruption count as they did then (none in a new run)."""
        self.adopted = 0
        for trial in trials:
            result = trial.last_result or {}
            if trial.status == "ERROR":
                self.failed += 1
            elif trial.status == "TERMINATED":
                self.done += 1
                ended = R.ended_as(result, self.max_epochs)
                self.diverged += ended == R.DIVERGED
                self.early += ended == R.STOPPED_EARLY
                self.infeasible += ended == R.INFEASIBLE
                best = (trial.metric_analysis or {}).get(self.metric, {}).get(self.mode)
                if isinstance(best, (int, float)) and not result.get(C.DIVERGED) and self._better(best):
                    self.best = (best, trial.trial_id, describe(trial.config))
            else:
                continue
            self.adopted += 1

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        if trial.trial_id not in self.runs:
            self.starting[trial.trial_id] = time.time()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.running.add(trial.trial_id)
        self.starting.pop(trial.trial_id, None)
        self.last[trial.trial_id] = result
        self.family.setdefault(trial.trial_id, family_of(trial.config or {}))
        if not result.get(C.INFEASIBLE):  # an infeasible trial's one result trained nothing
            self.epochs.append(float(result.get("timestamp") or time.time()))
            seconds = float(result.get("time_this_iter_s") or 0.0)
            self.seconds.append(seconds)
            run, epoch = self.runs.setdefault(trial.trial_id, []), int(result.get("training_iteration", 1))
            del run[max(0, epoch - 1):]  # a trial restored from an earlier checkpoint runs those epochs again
            run.extend([seconds] * (epoch - len(run)))
            values, value = self.values.setdefault(trial.trial_id, []), usable_value(result, self.metric)
            del values[max(0, epoch - 1):]
            values.extend([-math.inf if value is None else value if self.mode == "max" else -value] * (epoch - len(values)))
            self.at[trial.trial_id] = int(result.get("training_iteration", 0))
            self.reported[trial.trial_id] = self.epochs[-1]
            began = epoch_began(result)
            if began is not None and (self.first_began is None or began < self.first_began):
                self.first_began = began
        value = usable_value(result, self.metric)
        if value is not None and self._better(value):
            self.best = (value, trial.trial_id, describe(trial.config))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.starting.pop(trial.trial_id, None)
        self.paused.discard(trial.trial_id)
        result = self.last.get(trial.trial_id, {})
        ended = R.ended_as(result, self.max_epochs)
        self.at.pop(trial.trial_id, None)
        self.done += 1
        self.diverged += ended == R.DIVERGED
        self.early += ended == R.STOPPED_EARLY
        self.infeasible += ended == R.INFEASIBLE
        if ended == R.INFEASIBLE:  # one line: what raised where; the traceback stays in the trial's folder
            self._say(f"trial {trial.trial_id} infeasible: {result[C.INFEASIBLE]} (traceback: {C.INFEASIBLE_FILE} in its "
                      f"folder)  [{describe(trial.config)}]")
        else:
            outcome = {R.DIVERGED: "diverged (loss became NaN/inf), stopped", R.STOPPED_EARLY: "stopped early by the scheduler"}.get(ended, ended)
            value = result.get(self.metric)
            shown = f"{self.metric} {value:.4g}" if isinstance(value, (int, float)) and not result.get(C.DIVERGED) else "no metric"
            self._say(f"trial {trial.trial_id} {outcome} after {result.get('training_iteration', 0)} epoch(s): {shown}  "
                      f"[{describe(trial.config)}]")
        self._status()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.starting.pop(trial.trial_id, None)
        self.at.pop(trial.trial_id, None)
        self.failed += 1
        self._say(f"trial {trial.trial_id} FAILED: see {trial.local_path}/error.txt  [{describe(trial.config)}]")
        self._status()

    def on_step_end(self, iteration, trials, **info):
        paused = {t.trial_id for t in trials if t.status == "PAUSED"}
        for tid in self.paused - paused:  # resumed (or ended): a resumed trial's epoch runs from now
            self.resumed[tid] = time.time()
        self.paused = paused
        self.hold(trials, time.time())
        if time.monotonic() - self.last_print >= self.interval:
            self._status()

    def _status(self) -> None:
        self.last_print = time.monotonic()
        elapsed = time.monotonic() - self.started
        finished = self.done + self.failed
        parts = [
            f"{finished} trials" if self.expected_s is not None else f"{finished}/{self.num_samples} trials",
            f"{len(self.running - self.paused)} running" + (f", {len(self.paused)} paused at a rung" if self.paused else ""),
            f"{self.done} done ({self.early} stopped early, {self.diverged} diverged"
            + (f", {self.infeasible} infeasible)" if self.infeasible else ")"),
            f"{self.failed} failed",
        ]
        if self.best:
            parts.append(f"best {self.metric} {self.best[0]:.4g} ({self.best[2]})")
        if self.expected_s is not None:
            parts.append(f"~{clock(max(0.0, self.expected_s - elapsed))} left of the budget")
        elif (said := self.left_said()) is not None:
            parts.append(said)
        self._say(" | ".join(parts))
