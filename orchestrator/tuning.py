"""The one place Ray objects are built: Ray itself, the wrapped trainable, searcher, scheduler, Tuner.

Everything else in the orchestrator hands plain values (config, space, task data) to this module.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.config import Experiment, ExperimentConfig
from orchestrator.errors import UserError
from orchestrator.strategies import SCHEDULERS, SEARCHERS
from trainables.tasks.base import TaskData
from trainables.training import TrialConfig

# Ray reads these at import; set before the first `import ray` of the process.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# The legacy reporter honours verbose=0; the new one still prints its own banner (with a TensorBoard
# path in Ray's temp dir) over our progress view.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Save the experiment state (trial statuses, searcher) every 2 s instead of 10 s, so that a driver killed
# without warning loses at most 2 s of bookkeeping: a trial that finished is then rarely run again on resume.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "60")


def start_ray(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Starts the embedded local Ray (the default) or connects to a cluster; no-op when Ray already runs.

    `address="local"` always starts a fresh in-process instance, never a stale cluster left in /tmp.
    Worker output stays in Ray's log files; the progress view reports what matters.
    """
    import ray

    if ray.is_initialized():
        return
    common = dict(log_to_driver=False, logging_level="ERROR", configure_logging=True)
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, include_dashboard=False, **common)


def check_capacity(config: ExperimentConfig) -> None:
    """Refuses a per-trial request no node of the cluster could ever satisfy (instead of waiting forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": config.resources.cpu, "GPU": config.resources.gpu}
    fits = any(all(n.get("Resources", {}).get(k, 0) >= v for k, v in need.items() if v > 0) for n in nodes)
    if not fits:
        have = ray.cluster_resources()
        raise UserError(
            f"resources: each trial asks for cpu={config.resources.cpu}, gpu={config.resources.gpu}, but no node has that much "
            f"(cluster: {have.get('CPU', 0):g} CPU, {have.get('GPU', 0):g} GPU in {len(nodes)} node(s)); lower `resources` or add nodes"
        )


def default_concurrency(config: ExperimentConfig) -> int:
    """As many trials as the cluster's CPUs (and GPUs) hold at once, capped by num_samples."""
    import ray

    have = ray.cluster_resources()
    slots = have.get("CPU", 1) // config.resources.cpu
    if config.resources.gpu > 0:
        slots = min(slots, have.get("GPU", 0) // config.resources.gpu)
    return int(max(1, min(slots, config.num_samples)))


def hparam_types(space) -> dict[str, type]:
    """Every flat hyperparameter name a trial can have, with its value type (for HParams columns)."""
    rng = np.random.default_rng(0)
    types: dict[str, type] = {}
    for family, sub in space.families.items():
        sample = space.sample(rng)
        sample["arch"] = {"family": family, "model": {k: (v.sample(rng) if hasattr(v, "sample") else v) for k, v in sub.items()}}
        types.update({k: type(v) for k, v in TrialConfig.from_tune(sample).flat().items()})
    return types


def trainable_for(config: ExperimentConfig, data: TaskData, metric: str, mode: str):
    """The TorchTrainable with the task data (put in the object store once) and its per-trial resources."""
    from ray import tune

    from trainables.trainable import TorchTrainable, TrialSettings

    settings = TrialSettings(
        metric=metric,
        mode=mode,
        max_epochs=config.scheduler.max_epochs,
        steps_per_epoch=config.task.steps_per_epoch,
        seed=config.seed,
        cpus=config.resources.cpu,
    )
    wrapped = tune.with_parameters(TorchTrainable, data=data, settings=settings)
    return tune.with_resources(wrapped, {"cpu": config.resources.cpu, "gpu": config.resources.gpu})


@dataclass
class TuneSetup:
    """What the runner needs back: the tuner and the callbacks it reads from after `fit`."""

    tuner: Any
    progress: Any
    num_trials: int


def _trial_dirname(trial) -> str:
    # Short, stable directory names: `<family>_<trial id>`.
    family = trial.config.get("arch", {}).get("family", "trial")
    return f"{family}_{trial.trial_id}"


def planned_trials(exp: Experiment) -> int:
    """num_samples, or for the grid searcher the grid's size times num_samples (repeats)."""
    if exp.config.searcher == "grid":
        return len(exp.space.grid(np.random.default_rng(exp.config.seed))) * exp.config.num_samples
    return exp.config.num_samples


def run_config(exp: Experiment, storage: str, metric: str, mode: str, callbacks: list):
    from ray import tune

    config = exp.config
    return tune.RunConfig(
        name=config.name,
        storage_path=storage,
        stop={"training_iteration": config.scheduler.max_epochs},
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=config.checkpoint.keep,
            checkpoint_score_attribute=metric,
            checkpoint_score_order=mode,
            checkpoint_frequency=1,
            checkpoint_at_end=True,
        ),
        failure_config=tune.FailureConfig(max_failures=config.max_failures),
        callbacks=callbacks,
        verbose=0,
    )


def callbacks_for(exp: Experiment, metric: str, mode: str, num_trials: int, out=None) -> list:
    from orchestrator.progress import Progress
    from orchestrator.tensorboard import ExperimentTensorBoard, TrialTensorBoard

    progress = Progress(metric, mode, num_trials, exp.config.scheduler.max_epochs, out=out)
    return [progress, TrialTensorBoard(metric, mode, hparam_types(exp.space)), ExperimentTensorBoard(metric, mode)]


def build_tuner(exp: Experiment, data: TaskData, storage: str, metric: str, mode: str, *, out=None) -> TuneSetup:
    """A Tuner for a new experiment: searcher x scheduler x resources, actors reused across trials."""
    from ray import tune

    config = exp.config
    num_trials = planned_trials(exp)
    searcher = SEARCHERS[config.searcher](exp.space, metric, mode, config.seed, num_trials)
    callbacks = callbacks_for(exp, metric, mode, num_trials, out=out)
    tuner = tune.Tuner(
        trainable_for(config, data, metric, mode),
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=mode,
            search_alg=searcher,
            scheduler=SCHEDULERS[config.scheduler.kind](config.scheduler),
            num_samples=num_trials,
            max_concurrent_trials=config.max_concurrent or default_concurrency(config),
            reuse_actors=True,
            time_budget_s=config.time_budget_s,
            trial_dirname_creator=_trial_dirname,
            trial_name_creator=lambda trial: trial.trial_id,
        ),
        run_config=run_config(exp, storage, metric, mode, callbacks),
    )
    return TuneSetup(tuner, callbacks[0], num_trials)


def restore_tuner(exp: Experiment, data: TaskData, run_dir: str, metric: str, mode: str, *, out=None) -> TuneSetup:
    """The Tuner of an interrupted experiment: finished trials kept, others resumed from their checkpoints."""
    from ray import tune

    num_trials = planned_trials(exp)
    # The run config (callbacks included) comes back from the experiment's own saved state.
    tuner = tune.Tuner.restore(run_dir, trainable=trainable_for(exp.config, data, metric, mode), resume_errored=True)
    return TuneSetup(tuner, None, num_trials)
