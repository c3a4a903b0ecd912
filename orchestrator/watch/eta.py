"""The progress view's time left: the work the scheduler still has, scheduled over the workers, at the seconds
the epochs so far took (`work_left`), with what the workers spend beside the epochs (`hold`, `_taken`); not the
time per finished trial, which a scheduler that pauses trials at rungs ends late. A mixin of `Progress`, which
records what it reads: the books below are filled by its Tune callbacks."""

from __future__ import annotations

import bisect
import math
import time

from orchestrator.watch.console import clock

# After the last epoch, before the summary: stopping the trials still paused, the best model's export and the
# summary; measured 0.3-1.1 s from the last trial's line to the summary over 9 runs of the bundled tasks (3 s,
# counted before, made the last estimates 20-30% high).
END_S = 1.5
# Under this many seconds the estimate is the last epochs and the export, whose few seconds it cannot split finely
# (measured: "~0:08 left" with 4 s left): the line says "under 0:10 left" instead of a figure.
ALMOST_S = 10.0
# The time constant of the smoothing of the end the status lines point to, in seconds.
SMOOTH_S = 5.0
# A trial that reached a rung this recently may be one Tune is pausing: it says RUNNING until the checkpoint is saved.
PAUSING_S = 1.0


class TimeLeft:
    """Estimates the time a search has left from the progress view's books: `runs` (each started trial's epoch
    seconds), `values` (its value after each), `family`, `at` (epochs run by the trials not ended), `paused`,
    `starting`, `reported` and `resumed` (when a trial started, last reported, last left a rung), `epochs` and
    `seconds` (every epoch's end and own seconds), `busy` (the worker-seconds held), with the search's
    `scheduler`, `num_samples`, `max_epochs` and `workers`."""

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

    def epochs_left(self, now: float | None = None) -> float:
        """The epochs the scheduler is still expected to run. Under successive halving, counted by rung over the
        whole search (`work_left.rung_epochs_left`); otherwise each trial not started its expected epochs, each
        running trial the rest of its own, having passed the rung it reported last (it runs on), and each trial
        paused at a rung its rest discounted once more (it was not among the best there); the ended ones none."""
        from orchestrator.search.schedulers import SCHEDULERS
        from orchestrator.search.schedulers.work_left import rung_epochs_left

        marks, factor, not_started = self._rungs()
        if marks is not None:
            running = self._running(now)
            return rung_epochs_left(marks, factor, self._trials()[0], not_started, self._excess(marks, factor, now),
                                    [tid in running for tid in self.runs])
        kind, options = self.scheduler
        left = SCHEDULERS[kind].epochs_left
        running = sum(1.0 + left(options, epoch + 1) for tid, epoch in self.at.items() if tid not in self.paused and epoch < self.max_epochs)
        paused = sum(left(options, epoch) / factor for tid, epoch in self.at.items() if tid in self.paused)
        return not_started * left(options, 0) + running + paused

    def work_left(self, beside: float = 0.0, now: float | None = None) -> float:
        """Seconds the workers take to run the epochs left, at the epochs' own seconds (`time_this_iter_s`) and
        `beside` more per epoch: under successive halving each rung's epochs at the seconds of the epochs run
        there (`work_left.makespan`), otherwise each trial's rest at its own seconds per epoch; a new trial's at
        the cost of the families the searcher draws now (`work_left.new_trial_seconds`)."""
        from orchestrator.search.schedulers import SCHEDULERS
        from orchestrator.search.schedulers.work_left import (
            makespan,
            new_trial_seconds,
            segment_seconds,
            spread,
        )

        marks, factor, not_started = self._rungs()
        reached, runs = self._trials()
        families = [self.family.get(tid) for tid in self.runs]
        now = time.time() if now is None else now
        # How far into its epoch each trial is: a trial started that has reported nothing yet, and one running
        # since its last report (a paused one runs nothing; at most one a worker, the latest to report).
        started = [max(0.0, now - began) for began in self.starting.values()]
        running = self._running(now)
        into = [max(0.0, now - max(self.reported[tid], self.resumed.get(tid, 0.0))) if tid in running else 0.0 for tid in self.runs]
        if marks is not None:
            own = [run[-1] + beside if tid in self.at else None for tid, run in self.runs.items()]
            per_epoch = [x + beside for x in segment_seconds(marks, runs)]
            per_epoch[0] = new_trial_seconds(runs, families, marks[0]) + beside
            return makespan(marks, factor, reached, not_started, self.workers, per_epoch, own, self._waiting(marks, beside, running),
                            started, into, self._excess(marks, factor, now), [tid in running for tid in self.runs])
        kind, options = self.scheduler
        left, first = SCHEDULERS[kind].epochs_left, new_trial_seconds(runs, families, self.max_epochs) + beside
        new = left(options, 0) * first
        jobs = [max(0.0, new - min(t, first)) for t in started[:not_started]] + [new] * max(0, not_started - len(started))
        for (tid, run), t in zip(self.runs.items(), into):
            if tid not in self.at:
                continue
            epoch, cost = self.at[tid], run[-1] + beside
            rest = left(options, epoch) / factor if tid in self.paused else (1.0 + left(options, epoch + 1) if epoch < self.max_epochs else 0.0)
            jobs.append(max(0.0, rest * cost - min(t, cost)))
        return spread(jobs, self.workers)

    def _excess(self, marks: list[int], factor: float, now: float | None = None) -> list[int]:
        """For each rung, the trials promoted from it that are not among its top ceil(n / rf) now: promoted
        while the rung held few, they stay promoted, and the end of the search promotes ceil(n / rf) besides."""
        out, running = [], self._running(now)
        for mark in marks[:-1]:
            here = sorted(((v[mark - 1], len(v) > mark or tid in running) for tid, v in self.values.items() if len(v) >= mark), reverse=True)
            out.append(sum(on for _, on in here[math.ceil(len(here) / factor - 1e-9):]))
        return out

    def _running(self, now: float | None = None) -> set[str]:
        """The trials running now: not ended, not paused at a rung, with epochs left; at most one a worker, the
        latest to report (Tune's statuses come at each step). One that reached a rung in the last `PAUSING_S`
        counts as paused: Tune says RUNNING while it saves the checkpoint of a trial it pauses."""
        now = time.time() if now is None else now
        marks = set(self._rungs()[0] or ())
        moving = [tid for tid, epoch in self.at.items() if tid not in self.paused and epoch < self.max_epochs
                  and not (epoch in marks and now - self.reported[tid] < PAUSING_S and self.resumed.get(tid, 0.0) < self.reported[tid])]
        return set(sorted(moving, key=lambda tid: max(self.reported[tid], self.resumed.get(tid, 0.0)))[-self.workers:])

    def _waiting(self, marks: list[int], beside: float, running: set[str]) -> list[list[float]]:
        """For each rung, the seconds per epoch of the trials paused at the rung before it, the best first: the
        promotions to come are theirs, at their own pace (a small MLP promoted runs faster than the rung's
        average). A trial at a rung that runs on is not waiting: it is under way to the next."""
        out = []
        for mark in marks[:-1]:
            here = [(-self.values[tid][-1], self.runs[tid][-1] + beside) for tid, epoch in self.at.items()
                    if epoch == mark and tid not in running and self.runs.get(tid) and self.values[tid][-1] > -math.inf]
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
        seconds = self.work_left(beside, now) + END_S
        young = len(self.epochs) < max(10.0, 0.2 * (len(self.epochs) + self.epochs_left(now)))
        return (0.75 * seconds, 1.5 * seconds) if young else (seconds, seconds)

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

    def left_said(self, now: float | None = None) -> str | None:
        """The time left as the status line says it (`time_left`, smoothed over the lines said); None before the
        first epoch."""
        now = time.time() if now is None else now
        left = self.time_left(now)
        if left is None:
            return None
        # Smoothed: the end the estimates point to moves towards each new one by 1 - exp(-dt / SMOOTH_S), so that one
        # step's noise (a few cheap trials in the recent window, a rung's share dipping for a moment) does not
        # swing the line (measured over 25 recorded runs, an estimate every 2 s: 747 of 782 within 30%, against 726).
        mid = (left[0] + left[1]) / 2
        end = now + mid
        if self.said_end is not None and now > self.said_end[0]:
            end = self.said_end[1] + (1 - math.exp(-(now - self.said_end[0]) / SMOOTH_S)) * (end - self.said_end[1])
        self.said_end = (now, end)
        scale = max(0.0, end - now) / mid if mid > 0 else 1.0
        left = (left[0] * scale, left[1] * scale)
        if self.epochs_left(now) <= 0:
            return "finishing"  # no epoch is left to run: only the end of the search, the export and summary
        if left[1] < ALMOST_S:
            return f"under {clock(ALMOST_S)} left"  # the last epochs and the export: seconds, not a figure
        return f"~{clock(left[0])} left" if left[0] == left[1] else f"~{clock(left[0])}-{clock(left[1])} left"
