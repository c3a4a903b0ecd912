"""A compact progress view, printed instead of Ray's raw log stream.

One line per finished trial and a status line at most every `interval` seconds: trials running (paused) / done /
stopped early / failed, the best so far with its family and key hyperparameters, elapsed time and an
estimate of the time left (`time_left`: the work the scheduler still has, scheduled over the workers, at the
seconds the epochs so far took; not the time per finished trial, which a scheduler that pauses trials at rungs
ends late). Plain lines (no cursor tricks) so it reads the same in a terminal, a CI log or a Ray Job's log.
"""

from __future__ import annotations

import bisect
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
# Under this many seconds the estimate is the last epochs and the export, whose few seconds it cannot split finely
# (measured: "~0:08 left" with 4 s left): the line says "under 0:10 left" instead of a figure.
ALMOST_S = 10.0


class Progress(Callback):
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
        self.busy: list[tuple[float, float]] = []  # (wall time, worker-seconds taken by running trials until then)
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
            seconds = float(result.get("time_this_iter_s") or 0.0)
            self.seconds.append(seconds)
            run, epoch = self.runs.setdefault(trial.trial_id, []), int(result.get("training_iteration", 1))
            del run[max(0, epoch - 1):]  # a trial restored from an earlier checkpoint runs those epochs again
            run.extend([seconds] * (epoch - len(run)))
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

    def _rungs(self) -> tuple[list[int] | None, float, int]:
        """(the rungs of successive halving or None, the reduction factor, trials not started yet)."""
        from orchestrator.search.schedulers import SCHEDULERS
        from orchestrator.search.schedulers.base import rungs

        kind, options = self.scheduler
        factor = float(options.get("reduction_factor") or 1.0)
        not_started = max(0, self.num_samples - self.done - self.failed - len(self.at))
        if SCHEDULERS[kind].plans_rungs and factor > 1:
            return rungs(self.max_epochs, int(options.get("grace_period") or 1), factor), factor, not_started
        return None, factor, not_started

    def _trials(self) -> tuple[list[int], list[list[float]]]:
        """Each started trial's epochs run, and their seconds, oldest first (an ended one's last; one paused at a
        rung has reached it)."""
        runs = list(self.runs.values())
        return [len(r) for r in runs], runs

    def epochs_left(self) -> float:
        """The epochs the scheduler is still expected to run. Under successive halving, counted by rung over the
        whole search (`work_left.rung_epochs_left`); otherwise each trial not started its expected epochs, each
        running trial the rest of its own, having passed the rung it reported last (it runs on), and each trial
        paused at a rung its rest discounted once more (it was not among the best there); the ended ones none."""
        from orchestrator.search.schedulers import SCHEDULERS
        from orchestrator.search.schedulers.work_left import rung_epochs_left

        marks, factor, not_started = self._rungs()
        if marks is not None:
            return rung_epochs_left(marks, factor, self._trials()[0], not_started)
        kind, options = self.scheduler
        left = SCHEDULERS[kind].epochs_left
        running = sum(1.0 + left(options, epoch + 1) for tid, epoch in self.at.items() if tid not in self.paused and epoch < self.max_epochs)
        paused = sum(left(options, epoch) / factor for tid, epoch in self.at.items() if tid in self.paused)
        return not_started * left(options, 0) + running + paused

    def work_left(self, beside: float = 0.0) -> float:
        """Seconds the workers take to run the epochs left, at the epochs' own seconds (`time_this_iter_s`) and
        `beside` more per epoch: under successive halving each rung's epochs at the seconds of the epochs run
        there (`work_left.makespan`), otherwise each trial's rest at its own seconds per epoch, a new trial's at
        the recent first epochs'."""
        from orchestrator.search.schedulers import SCHEDULERS
        from orchestrator.search.schedulers.work_left import (
            makespan,
            segment_seconds,
            spread,
        )

        marks, factor, not_started = self._rungs()
        reached, runs = self._trials()
        if marks is not None:
            own = [run[-1] + beside if tid in self.at else None for tid, run in self.runs.items()]
            per_epoch = [x + beside for x in segment_seconds(marks, runs)]
            return makespan(marks, factor, reached, not_started, self.workers, per_epoch, own, self._waiting(marks, beside))
        kind, options = self.scheduler
        left, first = SCHEDULERS[kind].epochs_left, segment_seconds([self.max_epochs], runs)[0] + beside
        jobs = [left(options, 0) * first] * not_started
        for tid, epoch in self.at.items():
            rest = left(options, epoch) / factor if tid in self.paused else (1.0 + left(options, epoch + 1) if epoch < self.max_epochs else 0.0)
            jobs.append(rest * (self.runs[tid][-1] + beside if self.runs.get(tid) else first))
        return spread(jobs, self.workers)

    def _waiting(self, marks: list[int], beside: float) -> list[list[float]]:
        """For each rung, the seconds per epoch of the trials paused at the rung before it, the best first: the
        promotions to come are theirs, at their own pace (a small MLP promoted runs faster than the rung's
        average)."""
        sign = 1.0 if self.mode == "min" else -1.0
        out = []
        for mark in marks[:-1]:
            here = [(sign * value, self.runs[tid][-1] + beside) for tid, epoch in self.at.items()
                    if epoch == mark and self.runs.get(tid) and (value := usable_value(self.last.get(tid, {}), self.metric)) is not None]
            out.append([cost for _, cost in sorted(here)])
        return [[], *out]  # indexed by the rung a promotion runs to: none runs to the first

    def _taken(self, since: float, now: float) -> float:
        """Worker-seconds the search held between `since` and `now` (`hold`); all the workers, where the steps
        recorded none."""
        if len(self.busy) < 2 or self.busy[0][0] > since:
            return self.workers * (now - since)
        times = [t for t, _ in self.busy]
        i = bisect.bisect_left(times, since)
        (t0, b0), (t1, b1) = self.busy[max(0, i - 1)], self.busy[min(i, len(times) - 1)]
        at = b0 + (b1 - b0) * ((since - t0) / (t1 - t0) if t1 > t0 else 0.0)
        return max(0.0, self.busy[-1][1] - at)

    def time_left(self, now: float | None = None) -> tuple[float, float] | None:
        """(low, high) seconds left, equal when the estimate is settled; None before the first epoch.

        The work left (`work_left`: the epochs' own seconds, scheduled over the workers) with what a worker
        spends beside each epoch: over the last half of this session's training, the worker-seconds the running
        trials held less their epochs' own seconds, per epoch (starting, pausing and resuming trials,
        checkpoints, and the driver handing out results one at a time, which bounds a search of epochs of
        milliseconds). Until a fifth of the expected
        epochs have run (and at least 10), the seconds per epoch and the share of trials the rungs keep are
        young: a range is given, from 3/4 to 3/2 of the estimate."""
        if self.first_began is None or not self.epochs:
            return None
        now = time.time() if now is None else now
        since = self.first_began + (now - self.first_began) / 2
        recent = [i for i, t in enumerate(self.epochs) if t > since]
        if len(recent) < 5:
            since, recent = self.first_began, list(range(len(self.epochs)))
        beside = max(0.0, self._taken(since, now) - sum(self.seconds[i] for i in recent)) / len(recent)
        seconds = self.work_left(beside) + END_S
        young = len(self.epochs) < max(10.0, 0.2 * (len(self.epochs) + self.epochs_left()))
        return (0.75 * seconds, 1.5 * seconds) if young else (seconds, seconds)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.at.pop(trial.trial_id, None)
        self.failed += 1
        self._say(f"trial {trial.trial_id} FAILED: see {trial.local_path}/error.txt  [{describe(trial.config)}]")
        self._status()

    def on_step_end(self, iteration, trials, **info):
        self.paused = {t.trial_id for t in trials if t.status == "PAUSED"}
        self.hold(trials, time.time())
        if time.monotonic() - self.last_print >= self.interval:
            self._status()

    def hold(self, trials, now: float) -> None:
        """Integrates the worker-seconds the search holds (`busy`), at most every half second. While new trials
        are still to come every worker has work, and one that waits (for the driver to suggest and start a
        trial) spends that beside the epochs; once all have come, only the trials running or about to run hold
        a worker (the last promotions leave workers idle, which is not work)."""
        if self.busy and now - self.busy[-1][0] < 0.5:
            return
        held = self.workers if len(trials) < self.num_samples else min(
            self.workers, sum(t.status in ("RUNNING", "PENDING") for t in trials))
        self.busy.append((now, self.busy[-1][1] + held * (now - self.busy[-1][0]) if self.busy else 0.0))

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
            elif left is not None and left[1] < ALMOST_S:
                parts.append(f"under {clock(ALMOST_S)} left")  # the last epochs and the export: seconds, not a figure
            elif left is not None:
                parts.append(f"~{clock(left[0])} left" if left[0] == left[1] else f"~{clock(left[0])}-{clock(left[1])} left")
        self._say(" | ".join(parts))
