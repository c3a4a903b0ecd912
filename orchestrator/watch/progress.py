"""A compact progress view, printed instead of Ray's raw log stream.

One line per finished trial and a status line at most every `interval` seconds: trials running (paused) / done /
stopped early / failed, the best so far with its family and key hyperparameters, elapsed time and an
estimate of the time left. Plain lines (no cursor tricks) so it reads the same in a terminal, a CI log
or a Ray Job's log.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ray.tune import Callback

from orchestrator.reading import results as R
from orchestrator.watch.console import clock, describe
from trainables import constants as C


class Progress(Callback):
    """Counts trial outcomes as Tune reports them and prints the compact view."""

    def __init__(self, metric: str, mode: str, num_samples: int, max_epochs: int, *, interval: float = 10.0, out: TextIO | None = None,
                 expected_s: float | None = None):
        self.metric, self.mode, self.num_samples, self.max_epochs = metric, mode, num_samples, max_epochs
        self.expected_s = expected_s  # a budgeted search's planned duration (from the probe): the ETA counts down from it
        self.interval, self.out = interval, out  # None: sys.stdout at print time (the callback is pickled)
        self._reset()

    def setup(self, **info):
        self._reset()  # also after a resume, when this callback comes back from the saved experiment

    def _reset(self) -> None:
        self.started = time.monotonic()
        self.last_print = 0.0
        self.last: dict[str, dict] = {}  # trial_id -> last result
        self.running: set[str] = set()
        self.paused: set[str] = set()  # waiting at a scheduler's rung (HyperBand, promoting ASHA), as of the last step
        self.done = self.early = self.failed = self.diverged = 0
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
                best = (trial.metric_analysis or {}).get(self.metric, {}).get(self.mode)
                if isinstance(best, (int, float)) and not result.get(C.DIVERGED) and self._better(best):
                    self.best = (best, trial.trial_id, describe(trial.config))
            else:
                continue
            self.adopted += 1

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.running.add(trial.trial_id)
        self.last[trial.trial_id] = result
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not result.get(C.DIVERGED) and self._better(value):
            self.best = (value, trial.trial_id, describe(trial.config))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.paused.discard(trial.trial_id)
        result = self.last.get(trial.trial_id, {})
        epochs = result.get("training_iteration", 0)
        ended = R.ended_as(result, self.max_epochs)
        self.diverged += ended == R.DIVERGED
        self.early += ended == R.STOPPED_EARLY
        outcome = {R.DIVERGED: "diverged (loss became NaN/inf), stopped", R.STOPPED_EARLY: "stopped early by the scheduler"}.get(ended, ended)
        self.done += 1
        value = result.get(self.metric)
        shown = f"{self.metric} {value:.4g}" if isinstance(value, (int, float)) and not result.get(C.DIVERGED) else "no metric"
        self._say(f"trial {trial.trial_id} {outcome} after {epochs} epoch(s): {shown}  [{describe(trial.config)}]")
        self._status()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._say(f"trial {trial.trial_id} FAILED: see {trial.local_path}/error.txt  [{describe(trial.config)}]")
        self._status()

    def on_step_end(self, iteration, trials, **info):
        self.paused = {t.trial_id for t in trials if t.status == "PAUSED"}
        if time.monotonic() - self.last_print >= self.interval:
            self._status()

    def _status(self) -> None:
        self.last_print = time.monotonic()
        elapsed = time.monotonic() - self.started
        finished = self.done + self.failed
        parts = [
            f"{finished}/{self.num_samples} trials",
            f"{len(self.running - self.paused)} running" + (f", {len(self.paused)} paused at a rung" if self.paused else ""),
            f"{self.done} done ({self.early} stopped early, {self.diverged} diverged)",
            f"{self.failed} failed",
        ]
        if self.best:
            parts.append(f"best {self.metric} {self.best[0]:.4g} ({self.best[2]})")
        if self.expected_s is not None:
            parts.append(f"~{clock(max(0.0, self.expected_s - elapsed))} left of the plan")
        elif finished > (self.adopted or 0):  # the pace of this session only: adopted trials took no time in it
            left = elapsed / (finished - (self.adopted or 0)) * max(0, self.num_samples - finished)
            parts.append(f"~{clock(left)} left")
        self._say(" | ".join(parts))
