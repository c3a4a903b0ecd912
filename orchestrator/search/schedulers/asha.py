"""ASHA as its paper states it (Li et al., 2020): trials pause at each rung and are *promoted* from it, never stopped early.

Ray's `ASHAScheduler` is the stopping variant: a trial reaching a rung continues if it ranks in the top
1/reduction_factor of the results already recorded there, and stops otherwise. With few trials at once, the
first trials meet rungs that hold one or two results and pass them unchecked: at one trial at a time, the
first trial always runs every epoch, and a search spends a third of its budget before any rung has judged
anything. The promotion variant decides at every rung from what the rung holds *now*:

- a trial reaching a rung pauses there (its checkpoint kept), unless it is itself among the rung's top
  `floor(n / reduction_factor)` results not yet promoted;
- a free worker takes a promotion before a new trial: the best not-yet-promoted trial among the top
  `floor(n / reduction_factor)` of the highest rung that has one resumes from its checkpoint;
- when the searcher has no new trial left, the rungs promote `ceil(n / reduction_factor)` (so the best trial
  of every rung reaches `max_epochs`), and the trials still paused after that are stopped where they are.

The searcher learns each trial's value where the trial first stops running: the rung where it first pauses,
or its end (`PromotionLimiter`). A searcher such as TPE learns from finished trials only; a paused trial is
not finished until the search ends, so without this it would learn almost nothing. Tune counts paused
trials as live towards `max_concurrent_trials`, which would deadlock a search that pauses its only trial;
the limiter counts the trials that hold a worker, from the scheduler's own books.
"""

from __future__ import annotations

import math
from typing import Optional

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher as TuneSearcher

from orchestrator.search.schedulers.base import rungs
from orchestrator.search.schedulers.resumable import Resumable
from orchestrator.search.warm_start import Wrapper
from trainables.rows import usable_value


class PromotingASHA(FIFOScheduler):
    """The promotion variant of ASHA (see the module): pauses trials at rungs and resumes the best of each rung."""

    # One decision per epoch: a rung must see each result (Tune's buffered results would skip milestones).
    _supports_buffered_results = False

    def __init__(self, time_attr: str, max_t: int, grace_period: int, reduction_factor: float):
        super().__init__()
        self._time_attr, self._max_t, self._eta = time_attr, max_t, float(reduction_factor)
        self._milestones = rungs(max_t, grace_period, reduction_factor)[:-1]  # max_t itself ends a trial
        self._rungs: list[dict[str, float]] = [{} for _ in self._milestones]  # trial id -> signed value (higher is better)
        self._promoted: list[set[str]] = [set() for _ in self._milestones]
        self._next: dict[str, int] = {}  # trial id -> index of the next rung it will reach
        self._active: dict[str, Trial] = {}  # trials that hold a worker (running, or about to run)
        self._parked: dict[str, Trial] = {}  # trials paused at a rung, waiting for a promotion
        self._queue: list[Trial] = []  # promoted trials not yet resumed; each has a worker reserved
        # Every trial the scheduler was given: its saved state names them all, so that a resume knows when the
        # last of them is back (finished ones included).
        self._seen: dict[str, Trial] = {}
        self._ending = False  # no new trial will come: rungs promote ceil(n / eta)
        self.capacity = 1  # trials that may hold a worker at once (`PromotionLimiter` sets the search's)
        self._metric_op = 1.0

    def set_search_properties(self, metric, mode, **spec) -> bool:
        if not super().set_search_properties(metric, mode, **spec):
            return False
        if mode:
            self._mode = mode
            self._metric_op = 1.0 if mode == "max" else -1.0
        return True

    def paused(self, trial_id: str) -> bool:
        """Whether the trial waits at a rung for a promotion."""
        return trial_id in self._parked

    def busy(self) -> int:
        """Workers taken: trials running or pending, and promotions waiting to resume."""
        return len(self._active) + len(self._queue)

    # --- the rungs
    def _quota(self, n: int) -> int:
        return math.ceil(n / self._eta - 1e-9) if self._ending else math.floor(n / self._eta + 1e-9)

    def _candidate(self, current: Optional[Trial] = None) -> Optional[tuple[int, Trial]]:
        """(rung, trial) to promote next: from the highest rung with one, the best of its top quota not yet
        promoted that is paused there (or is `current`, which just reached that rung)."""
        for k in reversed(range(len(self._milestones))):
            rung = self._rungs[k]
            ranked = sorted(rung, key=lambda tid: rung[tid], reverse=True)[: self._quota(len(rung))]
            for tid in ranked:
                if tid in self._promoted[k]:
                    continue
                if tid in self._parked:
                    return k, self._parked[tid]
                if current is not None and tid == current.trial_id and self._next.get(tid) == k + 1:
                    return k, current
        return None

    def _promote(self, k: int, trial: Trial) -> None:
        self._promoted[k].add(trial.trial_id)
        if self._parked.pop(trial.trial_id, None) is not None:
            self._queue.append(trial)

    def _fill(self) -> None:
        """A worker came free: a waiting promotion takes it (else the searcher's next trial will)."""
        found = self._candidate()
        if found is not None:
            self._promote(*found)

    def _value(self, result: dict) -> float:
        value = usable_value(result, self._metric)
        return -math.inf if value is None else self._metric_op * value

    # --- Tune's hooks
    def on_trial_add(self, tune_controller, trial: Trial):
        self._seen[trial.trial_id] = trial
        self._next.setdefault(trial.trial_id, 0)
        if trial.trial_id not in self._parked:
            self._active[trial.trial_id] = trial

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        tid = trial.trial_id
        if trial in self._queue:  # a promoted trial is running again
            self._queue.remove(trial)
        self._active[tid] = trial
        k = self._next.get(tid, 0)
        if k >= len(self._milestones) or result.get(self._time_attr, 0) < self._milestones[k]:
            return TrialScheduler.CONTINUE
        self._rungs[k][tid] = self._value(result)
        self._next[tid] = k + 1
        found = self._candidate(trial)
        if found is not None and found[1] is trial:
            self._promoted[found[0]].add(tid)
            return TrialScheduler.CONTINUE
        del self._active[tid]
        self._parked[tid] = trial
        if found is not None:
            self._promote(*found)
        return TrialScheduler.PAUSE

    def _gone(self, trial: Trial) -> None:
        self._active.pop(trial.trial_id, None)
        self._parked.pop(trial.trial_id, None)
        if trial in self._queue:
            self._queue.remove(trial)
        self._fill()

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict):
        self._gone(trial)

    def on_trial_error(self, tune_controller, trial: Trial):
        self._gone(trial)

    def on_trial_remove(self, tune_controller, trial: Trial):
        self._gone(trial)

    def _to_resume(self) -> Optional[Trial]:
        """A promoted trial waiting to resume (the queue also holds ones resumed that have not reported yet)."""
        return next((t for t in self._queue if t.status in (Trial.PAUSED, Trial.PENDING)), None)

    def choose_trial_to_run(self, tune_controller) -> Optional[Trial]:
        if (trial := self._to_resume()) is not None:
            return trial
        for trial in tune_controller.get_trials():
            if trial.status == Trial.PENDING and trial.trial_id not in self._parked:
                return trial
        if self._parked and self.busy() < self.capacity and tune_controller.search_alg.is_finished():
            self._end(tune_controller)
            return self._to_resume()
        return None

    def _end(self, tune_controller) -> None:
        """The searcher has no trial left and a worker is free: promote with the rounded-up quota, and once no
        worker is busy, stop whatever no rung promotes any more. Each free worker takes a promotion as soon as
        it is free (waiting for every worker to be idle, and filling one, ran a search's last promotions one
        at a time: the quickstart's last 30 s on one of its two workers)."""
        self._ending = True
        self._fill()
        if not self._queue and not self._active:
            for trial in list(self._parked.values()):
                # Calls on_trial_remove, which unparks it; its status is saved by `SchedulerState.on_step_end`.
                tune_controller.stop_trial(trial)
            self._parked.clear()

    def debug_string(self) -> str:
        rungs = ", ".join(f"{m}: {len(r)} ({len(p)} promoted)" for m, r, p in zip(self._milestones, self._rungs, self._promoted))
        return f"Promoting ASHA: rungs {rungs}; {len(self._parked)} paused, {len(self._queue)} to resume"


class PromotionLimiter(Wrapper):
    """Wraps the search's searcher for `PromotingASHA`: suggests a trial only while a worker is free by the
    scheduler's books (paused trials hold none), and teaches the wrapped searcher each trial's value once,
    where the trial first stops running: at the rung where it first pauses, or at its end (a trial promoted
    at every rung it met is taught its final value, as under a stopping ASHA)."""

    OWN = ("told",)

    def __init__(self, inner: TuneSearcher, scheduler: PromotingASHA):
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.scheduler = inner, scheduler
        self.max_concurrent = 1
        self.told: set[str] = set()  # trials the wrapped searcher already learned

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        ok = self.inner.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.inner.metric, self.inner.mode
        return ok

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = self.scheduler.capacity = max_concurrent
        return True  # handled here: Tune's ConcurrencyLimiter would count paused trials as running

    def suggest(self, trial_id: str):
        if self.scheduler.busy() >= self.max_concurrent:
            return None
        return self.inner.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.told:
            return
        if self.scheduler.paused(trial_id):  # Tune hands the searcher a result after the scheduler decided on it
            self.told.add(trial_id)
            self.inner.on_trial_complete(trial_id, result=result)
        else:
            self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if trial_id in self.told:
            return
        self.told.add(trial_id)
        self.inner.on_trial_complete(trial_id, result=result, error=error)


class _Earlier:
    """Stands for a trial of an extended run's earlier search, where a scheduler only needs its id."""

    def __init__(self, trial_id: str):
        self.trial_id = trial_id


class ResumableASHA(Resumable, ASHAScheduler):
    def learn(self, history: list, mode: str) -> None:
        """Records an extended run's earlier trials in the rungs (`warm_start.Evaluated` with their curves), so
        that new trials are compared with every trial of the search, not only with each other."""
        sign = 1.0 if mode == "max" else -1.0  # ASHA ranks by sign * metric, higher better (its _metric_op, set later by Tune)
        for i, item in enumerate(history):
            bracket = self._brackets[i % len(self._brackets)]
            for epoch, value in item.curve:
                bracket.on_result(_Earlier(f"earlier-{i}"), epoch, sign * value)


class ResumablePromotingASHA(Resumable, PromotingASHA):
    """The promotion variant of ASHA (`orchestrator.search.schedulers.asha`), resumable: its trials paused at a rung stay
    paused on resume (Tune makes every unfinished trial pending again, and would start them)."""

    def state(self) -> dict:
        return {**super().state(), "parked": sorted(self._parked)}

    def on_trial_add(self, tune_controller, trial: Trial):
        if self._saved is not None and trial.trial_id in self._saved.get("parked", ()):
            trial.set_status(Trial.PAUSED)  # before Tune files it by status, right after this call
            # Tune saves and restores its pending decisions with the experiment: a trial interrupted while its
            # PAUSE was pending (its checkpoint being written) would be paused again after its first result
            # once promoted, behind the back of a scheduler that has it running. It is paused already.
            controller = getattr(tune_controller, "_tune_controller", None)
            for pending in (getattr(controller, "_cached_trial_decisions", {}), getattr(controller, "_queued_trial_decisions", {})):
                pending.pop(trial.trial_id, None)
        return super().on_trial_add(tune_controller, trial)

    def searcher_for(self, search_alg):
        return None if search_alg is None else PromotionLimiter(search_alg, self)

    def _loaded(self) -> None:
        # A trial that failed and is retried on resume (`resume_errored`) was off the books: it holds a worker again.
        for trial in self._seen.values():
            if trial.status == Trial.PENDING and trial.trial_id not in self._parked and trial not in self._queue:
                self._active[trial.trial_id] = trial

    def learn(self, history: list, mode: str) -> None:
        """Records an extended run's earlier trials in the rungs, as trials already promoted: new trials rank
        against them, and they take no promotion."""
        sign = 1.0 if mode == "max" else -1.0
        for i, item in enumerate(history):
            curve = dict(item.curve)
            for k, milestone in enumerate(self._milestones):
                if milestone in curve:
                    value = curve[milestone]
                    self._rungs[k][f"earlier-{i}"] = sign * value if value == value else float("-inf")
                    self._promoted[k].add(f"earlier-{i}")
