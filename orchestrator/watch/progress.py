"""A compact progress view, printed instead of Ray's raw log stream.

One line per finished trial and a status line at most every `interval` seconds: trials running (paused) / done /
stopped early / failed, the best so far with its family and key hyperparameters, elapsed time and an
estimate of the time left (`time_left`: the epochs the scheduler is still expected to run, at the pace of the
epochs so far; not the time per finished trial, which a scheduler that pauses trials at rungs ends late). Plain lines (no cursor tricks) so it reads the same in a terminal, a CI log
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
from trainables.rows import epoch_began, usable_value

# After the last epoch, before the summary: the best model's export (its evaluation on validation and test) and
# the summary, a few seconds on the bundled tasks; counted so that the last estimates are not all zero.
END_S = 3.0


class Progress(Callback):
    """Counts trial outcomes as Tune reports them and prints the compact view."""

    def __init__(self, metric: str, mode: str, num_samples: int, max_epochs: int, *, interval: float = 10.0, out: TextIO | None = None,
                 expected_s: float | None = None, scheduler: tuple[str, dict] | None = None):
        self.metric, self.mode, self.num_samples, self.max_epochs = metric, mode, num_samples, max_epochs
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
        self.first_began: float | None = None  # wall time the first of them began
        self.at: dict[str, int] = {}  # trial id -> epochs it has run, for the trials not ended yet
        self.running: set[str] = set()
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

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.running.add(trial.trial_id)
        self.last[trial.trial_id] = result
        if not result.get(C.INFEASIBLE):  # an infeasible trial's one result trained nothing
            self.epochs.append(float(result.get("timestamp") or time.time()))
            self.at[trial.trial_id] = int(result.get("training_iteration", 0))
            began = epoch_began(result)
            if began is not None and (self.first_began is None or began < self.first_began):
                self.first_began = began
        value = usable_value(result, self.metric)
        if value is not None and self._better(value):
            self.best = (value, trial.trial_id, describe(trial.config))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
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

    def epochs_left(self) -> float:
        """The epochs the scheduler is still expected to run: each trial not started yet its expected epochs; each
        running trial the rest of its own, having passed the rung it reported last (it runs on); each trial paused
        at a rung its rest discounted once more (it was not among the best there, so a promotion is the less likely);
        the ended ones none."""
        from orchestrator.search.schedulers import SCHEDULERS
        from orchestrator.search.schedulers.base import rung_epochs_left, rungs

        kind, options = self.scheduler
        left = SCHEDULERS[kind].epochs_left
        factor = float(options.get("reduction_factor") or 1.0)
        not_started = max(0, self.num_samples - self.done - self.failed - len(self.at))
        if SCHEDULERS[kind].plans_rungs and factor > 1:
            # Successive halving counted by rung over every trial (`rung_epochs_left`): at the end of a search the
            # rungs resume few of the paused trials, which a per-trial chance overestimates.
            reached = [int(r.get("training_iteration", 0)) for r in self.last.values() if not r.get(C.INFEASIBLE)]
            marks = rungs(self.max_epochs, int(options.get("grace_period") or 1), factor)
            return rung_epochs_left(marks, factor, reached, not_started)
        running = sum(1.0 + left(options, epoch + 1) for tid, epoch in self.at.items() if tid not in self.paused and epoch < self.max_epochs)
        paused = sum(left(options, epoch) / factor for tid, epoch in self.at.items() if tid in self.paused)
        return not_started * left(options, 0) + running + paused

    def time_left(self, now: float | None = None) -> tuple[float, float] | None:
        """(low, high) seconds left, equal when the estimate is settled; None before the first epoch.

        The work left is `epochs_left`; its pace is the recent one, epochs per second of wall time over the last
        half of this session's training (all trials at once together), so that the longer epochs of the larger
        models the rungs promote count. Until a fifth of the expected epochs have run (and at least 10), the pace
        and the share of trials the rungs keep are young: a range is given, from 3/4 to 3/2 of the estimate."""
        if self.first_began is None or not self.epochs:
            return None
        now = time.time() if now is None else now
        since = self.first_began + (now - self.first_began) / 2
        recent = sum(t > since for t in self.epochs)
        pace = (recent / max(now - since, 1e-6)) if recent >= 5 else len(self.epochs) / max(now - self.first_began, 1e-6)
        left = self.epochs_left()
        seconds = left / pace + END_S
        young = len(self.epochs) < max(10.0, 0.2 * (len(self.epochs) + left))
        return (0.75 * seconds, 1.5 * seconds) if young else (seconds, seconds)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.at.pop(trial.trial_id, None)
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
        else:
            left = self.time_left()
            if left is not None and self.epochs_left() <= 0:
                parts.append("finishing")  # no epoch is left to run: only the end of the search, the export and summary
            elif left is not None:
                parts.append(f"~{clock(left[0])} left" if left[0] == left[1] else f"~{clock(left[0])}-{clock(left[1])} left")
        self._say(" | ".join(parts))
