"""The one place the search's Ray objects are built: the wrapped trainable, searcher, scheduler, callbacks, Tuner.

Everything else in the orchestrator hands plain values (config, space, task data) to this module; Ray
itself is started by `cluster`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.cluster import default_concurrency
from orchestrator.config import ExperimentConfig
from orchestrator.prepare import Prepared
from orchestrator.schedulers import SCHEDULERS
from orchestrator.searchers import SEARCHERS
from trainables.tasks.base import TaskData
from trainables.trial import TrialConfig, family_of


def hparam_types(space) -> dict[str, type]:
    """Every flat hyperparameter name a trial can have, with its value type (for HParams columns)."""
    types: dict[str, type] = {}
    for config in space.probes(np.random.default_rng(0)):
        types.update({k: type(v) for k, v in TrialConfig.from_tune(config).flat().items()})
    return types


def trainable_for(config: ExperimentConfig, data: TaskData, metric: str, mode: str, storage_marker: str | None = None):
    """The TorchTrainable with the task data (put in the object store once: trials on every node of a cluster
    read it from there, so a data file that exists only where the driver runs is enough) and its per-trial resources."""
    from ray import tune

    from trainables.trainable import TorchTrainable, TrialSettings

    settings = TrialSettings(
        metric=metric,
        mode=mode,
        max_epochs=config.scheduler.max_epochs,
        steps_per_epoch=config.task.steps_per_epoch,
        seed=config.seed,
        cpus=config.resources.cpu,
        storage_marker=storage_marker,
    )
    wrapped = tune.with_parameters(TorchTrainable, data=data, settings=settings)
    return tune.with_resources(wrapped, {"cpu": config.resources.cpu, "gpu": config.resources.gpu})


@dataclass
class TuneSetup:
    """What the runner needs back: the tuner and how many trials it plans."""

    tuner: Any
    num_trials: int


def _trial_dirname(trial) -> str:
    # Short, stable directory names: `<family>_<trial id>`.
    return f"{family_of(trial.config, 'trial')}_{trial.trial_id}"


def planned_trials(p: Prepared) -> int:
    """How many trials the experiment's searcher runs (num_samples, or the grid's size times num_samples)."""
    c = p.exp.config
    return SEARCHERS[c.searcher].planned(p.exp.space, c.num_samples, c.seed)


def run_config(p: Prepared, storage: str, callbacks: list):
    from ray import tune

    config = p.exp.config
    return tune.RunConfig(
        name=config.name,
        storage_path=storage,
        stop={"training_iteration": config.scheduler.max_epochs},
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=config.checkpoint.keep,
            checkpoint_score_attribute=p.metric,
            checkpoint_score_order=p.mode,
            checkpoint_frequency=1,
            checkpoint_at_end=True,
        ),
        failure_config=tune.FailureConfig(max_failures=config.max_failures),
        callbacks=callbacks,
        verbose=0,
    )


def callbacks_for(p: Prepared, num_trials: int, out=None) -> list:
    from orchestrator.progress import Progress
    from orchestrator.tensorboard import ExperimentTensorBoard, TrialTensorBoard

    progress = Progress(p.metric, p.mode, num_trials, p.exp.config.scheduler.max_epochs, out=out)
    return [progress, TrialTensorBoard(p.metric, p.mode, hparam_types(p.exp.space)), ExperimentTensorBoard(p.metric, p.mode)]


def build_tuner(p: Prepared, storage: str, *, out=None, storage_marker: str | None = None) -> TuneSetup:
    """A Tuner for a new experiment: searcher x scheduler x resources, actors reused across trials."""
    from ray import tune

    config = p.exp.config
    num_trials = planned_trials(p)
    searcher = SEARCHERS[config.searcher].build(p.exp.space, p.metric, p.mode, config.seed, num_trials)
    tuner = tune.Tuner(
        trainable_for(config, p.data, p.metric, p.mode, storage_marker),
        tune_config=tune.TuneConfig(
            metric=p.metric,
            mode=p.mode,
            search_alg=searcher,
            scheduler=SCHEDULERS[config.scheduler.kind].build(config.scheduler),
            num_samples=num_trials,
            max_concurrent_trials=config.max_concurrent or default_concurrency(config),
            reuse_actors=True,
            time_budget_s=config.time_budget_s,
            trial_dirname_creator=_trial_dirname,
            trial_name_creator=lambda trial: trial.trial_id,
        ),
        run_config=run_config(p, storage, callbacks_for(p, num_trials, out=out)),
    )
    return TuneSetup(tuner, num_trials)


def restore_tuner(p: Prepared, location: str) -> TuneSetup:
    """The Tuner of an interrupted experiment: finished trials kept, others resumed from their checkpoints."""
    from ray import tune

    # The run config (callbacks included) comes back from the experiment's own saved state.
    tuner = tune.Tuner.restore(location, trainable=trainable_for(p.exp.config, p.data, p.metric, p.mode), resume_errored=True)
    return TuneSetup(tuner, planned_trials(p))
