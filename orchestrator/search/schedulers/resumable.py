"""A scheduler's state kept across `orchestrator resume`: Ray's schedulers made resumable, and the callback that saves them.

Ray Tune 2.60 does not restore a scheduler on resume: `TuneController.__getstate__` leaves it out and
`resume()` restores only the searcher and the callbacks, so ASHA's rungs (or PBT's population, or the
median rule's history) would start empty, and the resumed search would stop fewer trials than the
uninterrupted one. Tune does restore callbacks, and saves their state in the same `save_to_dir` as the
trials' state, so the two always agree. `SchedulerState` is such a callback; it holds the scheduler itself
(both travel in the one pickle of `tuner.pkl`, so after `Tuner.restore` they are still the same object).

The schedulers' state refers to Tune's `Trial` objects, which a resume rebuilds as new objects. So the
state is pickled with every Trial replaced by its id, and loaded once the resumed trials are added again:
`Resumable.on_trial_add` recognizes the trials the state knows (and does not add them a second time, which
would put them in a new bracket or a new population slot).
"""

from __future__ import annotations

import io
from typing import Any, Optional

from ray import cloudpickle
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    FIFOScheduler,
    HyperBandForBOHB,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
)

_TRIAL = "trial"


class _Pickler(cloudpickle.CloudPickler):
    """Pickles a scheduler's state with each Trial replaced by its id (noted in `trial_ids`)."""

    def __init__(self, file):
        super().__init__(file)
        self.trial_ids: set[str] = set()

    def persistent_id(self, obj):
        if isinstance(obj, Trial):
            self.trial_ids.add(obj.trial_id)
            return (_TRIAL, obj.trial_id)
        return None


class _Unpickler(cloudpickle.pickle.Unpickler):
    """Loads a state pickled by `_Pickler`, with each trial id replaced by the resumed run's Trial of that id."""

    def __init__(self, file, trials: dict[str, Trial]):
        super().__init__(file)
        self.trials = trials

    def persistent_load(self, pid):
        kind, trial_id = pid
        return self.trials[trial_id]


class Resumable:
    """A mixin for a Ray TrialScheduler: `state()` to save it, `load_state(state)` to restore it on resume."""

    _saved: Optional[dict] = None  # a state waiting for its trials to be added back
    _arrived: dict
    _controller: Any = None  # Tune's controller as the hooks see it (never saved): `SchedulerState` needs it

    def learn(self, history: list, mode: str) -> None:
        """What the scheduler takes from an extended run's earlier trials; most keep nothing across searches."""

    def searcher_for(self, search_alg):
        """The search algorithm this scheduler needs: the searcher itself, for all but the promoting ASHA."""
        return search_alg

    def state(self) -> dict:
        buffer = io.BytesIO()
        pickler = _Pickler(buffer)
        pickler.dump({k: v for k, v in self.__dict__.items() if k not in ("_saved", "_arrived", "_controller")})
        return {"state": buffer.getvalue(), "trials": sorted(pickler.trial_ids)}

    def load_state(self, state: dict) -> None:
        self._saved, self._arrived = state, {}
        if not state["trials"]:
            self._finish_loading()

    def _finish_loading(self) -> None:
        saved, self._saved = self._saved, None
        if saved is not None:
            self.__dict__.update(_Unpickler(io.BytesIO(saved["state"]), self._arrived).load())
            self._loaded()

    def _loaded(self) -> None:
        """Called once a saved state is back, with the resumed run's trials in it."""

    def on_trial_add(self, tune_controller, trial: Trial):
        self._controller = tune_controller
        if self._saved is not None and trial.trial_id in self._saved["trials"]:
            self._arrived[trial.trial_id] = trial
            if len(self._arrived) == len(self._saved["trials"]):
                self._finish_loading()
            return None
        self._finish_loading()  # a new trial: the restored ones are all back (Tune re-adds them first)
        return super().on_trial_add(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller, **options):
        # `options`: HyperBandForBOHB calls itself again with allow_recurse=False when its current band has no trial to run.
        self._controller = tune_controller
        self._finish_loading()
        return super().choose_trial_to_run(tune_controller, **options)

    def on_trial_result(self, tune_controller, trial, result):
        self._finish_loading()
        return super().on_trial_result(tune_controller, trial, result)


class ResumableFIFO(Resumable, FIFOScheduler):
    pass


class ResumableHyperBand(Resumable, HyperBandScheduler):
    pass


class ResumableHyperBandForBOHB(Resumable, HyperBandForBOHB):
    pass


class ResumableMedian(Resumable, MedianStoppingRule):
    pass


class ResumablePBT(Resumable, PopulationBasedTraining):
    def on_trial_add(self, tune_controller, trial: Trial):
        if not trial.relative_logdir and trial.trial_dirname_creator is not None:
            # Named again now that its config is resolved: Tune names a trial when it builds it, while a PBT
            # population's configs are still placeholders (it would be `trial_<id>`, not `<family>_<id>`).
            trial.custom_dirname = trial.trial_dirname_creator(trial)
        return super().on_trial_add(tune_controller, trial)


class SchedulerState(Callback):
    """Saves the scheduler's state with every experiment checkpoint and restores it on resume (see the module),
    and has Tune save the final status of the trials the scheduler ended while they held no actor."""

    def __init__(self, scheduler: Resumable):
        self.scheduler = scheduler
        self._ended: set[str] = set()  # trials whose final status Tune was told to save (never saved)

    def __getstate__(self):  # what was marked in one session is marked again after a resume
        return {**self.__dict__, "_ended": set()}

    def get_state(self) -> Optional[dict[str, Any]]:
        return {"scheduler": self.scheduler.state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state(state["scheduler"])

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        """Has Tune save the status of every trial it ended (after the step that ended the search, before Tune
        saves its final state). Tune saves a trial's new status only when it marks the trial, and stopping a trial
        that has no actor (paused at a rung when the search ended: time budget, HyperBand, the promoting ASHA)
        does not mark it: the run's saved state would hold it as PAUSED, unfinished."""
        controller = getattr(self.scheduler._controller, "_tune_controller", None)  # past Tune's restricting wrapper
        if controller is None:
            return
        for trial in trials:  # once each: a trial does not leave TERMINATED
            if trial.status == Trial.TERMINATED and trial.trial_id not in self._ended:
                controller._mark_trial_to_checkpoint(trial)
                self._ended.add(trial.trial_id)
