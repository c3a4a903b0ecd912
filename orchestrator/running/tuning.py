"""The one place the search's Ray objects are built: the wrapped trainable, searcher, scheduler, callbacks, Tuner.

Everything else in the orchestrator hands plain values (config, space, task data) to this module; Ray
itself is started by `cluster`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.experiment.config import ExperimentConfig
from orchestrator.running.cluster import default_concurrency
from orchestrator.running.prepare import Prepared
from orchestrator.search.schedulers import SCHEDULERS
from orchestrator.search.searchers import SEARCHERS
from trainables.tasks.base import TaskData
from trainables.trial import TrialConfig, trial_dirname


def hparam_types(space) -> dict[str, type]:
    """Every flat hyperparameter name a trial can have, with its value type (for HParams columns): a family's
    own hyperparameters typed by its class's hints (a user's `channels: int` is an int column)."""
    from trainables.models import registry_for
    from trainables.trial import MODEL_PREFIX

    types: dict[str, type] = {}
    for config in space.probes(np.random.default_rng(0)):
        types.update({k: type(v) for k, v in TrialConfig.from_tune(config).flat().items()})
    families = registry_for(space.models)
    for family, sub in space.families.items():
        params = families[family].params()
        types.update({f"{MODEL_PREFIX}{k}": params[k].value_type() for k in sub if params[k].type is not None})
    return types


def trainable_for(config: ExperimentConfig, data: TaskData, metric: str, mode: str, storage_marker: str | None = None,
                  models: dict | None = None):
    """The TorchTrainable with the task data (put in the object store once: trials on every node of a cluster
    read it from there, so a data file that exists only where the driver runs is enough) and its per-trial resources.
    `models`: the user's families (`SearchSpace.models`), which every worker imports."""
    from ray import tune

    from orchestrator.running.cluster import models_shipped
    from trainables.trainable import TorchTrainable, TrialSettings

    settings = TrialSettings(
        metric=metric,
        mode=mode,
        max_epochs=config.scheduler.max_epochs,
        steps_per_epoch=config.task.steps_per_epoch,
        seed=config.seed,
        cpus=config.resources.cpu,
        workers=config.resources.workers,
        gpus=config.resources.gpu,
        storage_marker=storage_marker,
        models=dict(models or {}),
        models_shipped=models_shipped(),
        limits=config.limits.as_dict(),
    )
    _classes_by_value(settings.models)
    wrapped = tune.with_parameters(TorchTrainable, data=data, settings=settings)
    return tune.with_resources(wrapped, trial_resources(config.resources))


def trial_resources(r):
    """What Tune reserves per trial: its CPU/GPU share, or with `workers` above 1 a placement group of one
    bundle per data-parallel worker and an empty head (the trial's own actor holds no device, and the workers
    are counted, reserved and freed with their trial; PACK keeps them on as few nodes as fit)."""
    from ray import tune

    if r.workers == 1:
        return {"cpu": r.cpu, "gpu": r.gpu}
    return tune.PlacementGroupFactory([{}] + [{"CPU": r.cpu, "GPU": r.gpu}] * r.workers, strategy="PACK")


def _classes_by_value(models: dict) -> None:
    """A model class passed from Python travels to the workers with its module's code (a `__main__` class does
    anyway): a notebook's `from my_models import Conv` must work on workers that cannot import `my_models`."""
    import sys

    from ray import cloudpickle

    for ref in models.values():
        module = sys.modules.get(getattr(ref, "__module__", "")) if isinstance(ref, type) else None
        if module is not None and module.__name__ != "__main__" and "-packages" not in (getattr(module, "__file__", "") or ""):
            cloudpickle.register_pickle_by_value(module)  # installed packages (site-packages) are imported as usual


@dataclass
class TuneSetup:
    """What the runner needs back: the tuner and how many trials it plans."""

    tuner: Any
    num_trials: int


def planned_trials(p: Prepared) -> int:
    """How many trials the experiment's searcher runs (num_samples, or the grid's size times num_samples)."""
    c = p.exp.config
    return SEARCHERS[c.searcher].planned(p.exp.space, c.num_samples, c.seed)


def run_config(p: Prepared, storage: str, callbacks: list):
    """Where and how Tune keeps the run: its storage, checkpoints, failures, callbacks, and when trials stop (at
    max_epochs, and at the prepared search's own stop condition, `Prepared.stop`, if any)."""
    from ray import tune

    config = p.exp.config
    stop = {"training_iteration": config.scheduler.max_epochs}
    if p.stop is not None:
        from ray.tune.stopper import (
            CombinedStopper,
            FunctionStopper,
            MaximumIterationStopper,
            Stopper,
        )

        extra = p.stop if isinstance(p.stop, Stopper) else FunctionStopper(p.stop)
        stop = CombinedStopper(MaximumIterationStopper(config.scheduler.max_epochs), extra)
    return tune.RunConfig(
        name=config.name,
        storage_path=storage,
        stop=stop,
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


def callbacks_for(p: Prepared, num_trials: int, out=None, storage: str | None = None) -> list:
    from orchestrator.running.result_files import CsvProgress, JsonResults
    from orchestrator.watch.progress import Progress
    from orchestrator.watch.tensorboard import ExperimentTensorBoard, TrialTensorBoard
    from orchestrator.watch.trackers import RunInfo, tracker_callbacks

    expected = p.exp.config.time_budget_s if p.plan is not None else None  # the search ends at its time budget
    sched = p.exp.config.scheduler
    progress = Progress(p.metric, p.mode, num_trials, sched.max_epochs, out=out, expected_s=expected,
                        scheduler=(sched.kind, sched.model_dump()),
                        workers=p.exp.config.max_concurrent or default_concurrency(p.exp.config))
    # The experiment trackers (`loggers`) keep local stores in the run directory; a run stored at a URI has none here.
    run_dir = Path(storage) / p.exp.config.name if storage and "://" not in storage else None
    trackers = tracker_callbacks(p.exp.config.loggers, RunInfo(p.exp.config.name, run_dir))
    # JsonResults and CsvProgress stand in for Tune's own writers of result.json and progress.csv.
    return [progress, JsonResults(), CsvProgress(), TrialTensorBoard(p.metric, p.mode, hparam_types(p.exp.space)),
            ExperimentTensorBoard(p.metric, p.mode), *trackers]


MEMBER = "member"  # a PBT trial's place in its population: the one key of its config Tune's grid enumerates


def _member_value(population: list, key: str, config: dict):
    # Tune passes the config itself, or (while it expands the grid) its trial spec, with the config under `config`.
    values = config["config"] if "config" in config else config
    return population[values[MEMBER]][key]


def population_space(population: list[dict]) -> dict:
    """A param_space whose grid gives exactly these configs, one trial each: PBT works only with Ray's own
    variant generator (it refuses a Searcher), which cannot take configs whose keys differ between families."""
    import functools

    from ray import tune

    keys = sorted({k for config in population for k in config})
    return {MEMBER: tune.grid_search(list(range(len(population)))),
            **{k: tune.sample_from(functools.partial(_member_value, population, k)) for k in keys}}


def search_alg_for(p: Prepared, num_trials: int, history: list = (), seed: int | None = None) -> tuple[Any, dict | None]:
    """(search algorithm, param_space): the searcher, wrapped to run `points_to_evaluate` first and to learn
    `history` (an extended run's earlier trials) when there are any; for PBT, Ray's own generator over a
    random population (the points first), given as a param_space."""
    config = p.exp.config
    seed = config.seed if seed is None else seed
    points = p.exp.first_points
    if SCHEDULERS[config.scheduler.kind].own_population:
        rng = np.random.default_rng(seed)
        return None, population_space(points + [p.exp.space.sample(rng) for _ in range(max(0, num_trials - len(points)))])
    record = SEARCHERS[config.searcher]
    options = {} if p.startup_fraction is None else {"startup_fraction": p.startup_fraction}
    # A budgeted search is given a ceiling of trials that the time budget ends (`budget.ceiling`): a model-based
    # searcher's random start-up is sized to the trials the plan expects, not to the ceiling. A grid's count is its plan.
    modelled = p.plan.num_samples if p.plan is not None and record.runs_given_points else num_trials
    searcher = record.build(p.exp.space, p.metric, p.mode, seed, modelled, **options)
    if not record.runs_given_points:
        return searcher, None  # the grid runs its own plan
    from orchestrator.search.no_repeats import NoRepeats
    from orchestrator.search.warm_start import WarmStart

    if points or history:
        searcher = WarmStart(searcher, p.exp.space, points, list(history), record.learn, p.metric, p.mode)
    return NoRepeats(searcher, p.exp.space, seed, p.metric, p.mode), None


def build_tuner(p: Prepared, storage: str, *, out=None, storage_marker: str | None = None, num_trials: int | None = None,
                history: list = (), seed: int | None = None, curves: dict | None = None) -> TuneSetup:
    """A Tuner for a new experiment: searcher x scheduler x resources, actors reused across trials.

    `num_trials`, `history`, `seed`, `curves`: an extension of a finished run (`orchestrator extend`) runs that
    many new trials, with the searcher taught the earlier ones and seeded apart from them, and the
    experiment-wide TensorBoard curves continued from `curves` (`ExperimentTensorBoard.set_state`).
    """
    from ray import tune

    from orchestrator.search.schedulers.resumable import SchedulerState
    from orchestrator.watch.tensorboard import ExperimentTensorBoard

    config = p.exp.config
    num_trials = planned_trials(p) if num_trials is None else num_trials
    scheduler = SCHEDULERS[config.scheduler.kind].build(config.scheduler, p.exp.space, SEARCHERS[config.searcher])
    scheduler.learn(list(history), p.mode)  # ASHA's rungs take in an extended run's earlier trials
    callbacks = callbacks_for(p, num_trials, out=out, storage=storage)
    for callback in callbacks:
        if curves is not None and isinstance(callback, ExperimentTensorBoard):
            callback.set_state(curves)
    search_alg, param_space = search_alg_for(p, num_trials, history, seed)
    search_alg = scheduler.searcher_for(search_alg)  # the promoting ASHA counts workers its own way
    tuner = tune.Tuner(
        trainable_for(config, p.data, p.metric, p.mode, storage_marker, models=p.exp.space.models),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=p.metric,
            mode=p.mode,
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=num_trials if param_space is None else 1,  # a population's grid is its trials
            max_concurrent_trials=config.max_concurrent or default_concurrency(config),
            reuse_actors=True,
            time_budget_s=config.time_budget_s,
            trial_dirname_creator=trial_dirname,
            trial_name_creator=lambda trial: trial.trial_id,
        ),
        # SchedulerState: Tune restores callbacks but not the scheduler (orchestrator/search/schedulers/resumable.py).
        run_config=run_config(p, storage, callbacks + [SchedulerState(scheduler)]),
    )
    return TuneSetup(tuner, num_trials)


def restore_tuner(p: Prepared, location: str) -> TuneSetup:
    """The Tuner of an interrupted experiment: finished trials kept, others resumed from their checkpoints."""
    from ray import tune

    # The run config (callbacks included) comes back from the experiment's own saved state. A PBT population's
    # configs are functions Tune keeps out of its saved state (placeholders): they are drawn again, identically.
    population = search_alg_for(p, planned_trials(p))[1] if SCHEDULERS[p.exp.config.scheduler.kind].own_population else None
    tuner = tune.Tuner.restore(location, trainable=trainable_for(p.exp.config, p.data, p.metric, p.mode, models=p.exp.space.models),
                               resume_errored=True, param_space=population)
    return TuneSetup(tuner, planned_trials(p))
