"""The plain Ray Tune contender, written the way Ray's documentation teaches it.

A function trainable that loads its own data, builds its model, trains and reports with `tune.report`
(a checkpoint per epoch, as the docs' PyTorch example does), HyperOptSearch + ASHAScheduler, and the
Tuner's defaults otherwise: one fresh worker process per trial (no actor reuse), all checkpoints kept.
Only what the comparison needs is set: the same search, `max_concurrent_trials`, and a storage folder.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.workload import (
    METRIC,
    MODE,
    TrialFigures,
    Workload,
    best_so_far,
    device_for,
    figures,
    fixed_configs,
    load_data,
    search_space,
    startup_trials,
    trial_seed,
)


def train_charlm(config: dict[str, Any], workload: Workload) -> None:
    """One trial, start to finish, in its own worker (the docs' `train_fn(config)`)."""
    import torch
    from ray import tune

    from trainables.objectives import Objective
    from trainables.training import DeviceData, TrialConfig, build_trial, run_epoch

    config = config.get("fixed", config)  # a "fixed" workload passes its config through a grid
    data = load_data(workload)  # each trial reads and encodes the corpus itself
    device = device_for(workload.plain_gpu_per_trial)
    staged = DeviceData.stage(data, device)
    trial = TrialConfig.from_tune(config)
    state = build_trial(trial, data.spec, device, seed=trial_seed(config, workload.seed), max_epochs=workload.max_epochs)
    objective = Objective(data.objective)
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state.load_state_dict(torch.load(os.path.join(folder, "checkpoint.pt"), weights_only=True))
    while state.epoch < workload.max_epochs:
        metrics = run_epoch(state, staged, objective, METRIC, max_steps=workload.steps_per_epoch)
        metrics["ended_at"] = time.time()  # Tune's own timestamp is in whole seconds
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state.state_dict(), os.path.join(folder, "checkpoint.pt"))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def run(w: Workload, workdir: Path) -> dict[str, Any]:
    began, began_wall = time.perf_counter(), time.time()
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.hyperopt import HyperOptSearch

    from search_spaces.hyperopt_space import to_hyperopt

    # address="local": a fresh Ray of its own, never another one left running on the machine.
    ray.init(address="local", num_cpus=os.cpu_count(), **({} if w.plain_gpu_per_trial else {"num_gpus": 0}))
    resources = {"cpu": w.cpu_per_trial, "gpu": w.plain_gpu_per_trial}
    trainable = tune.with_resources(tune.with_parameters(train_charlm, workload=w), resources)
    if w.work == "search":
        space = search_space()
        tune_config = tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=HyperOptSearch(to_hyperopt(space), metric=METRIC, mode=MODE, n_initial_points=startup_trials(w), random_state_seed=w.seed),
            scheduler=ASHAScheduler(max_t=w.max_epochs, grace_period=w.grace_period, reduction_factor=w.reduction_factor),
            num_samples=w.num_trials,
            max_concurrent_trials=w.plain_concurrent,
        )
        param_space = None
    else:
        tune_config = tune.TuneConfig(metric=METRIC, mode=MODE, max_concurrent_trials=w.plain_concurrent)
        param_space = {"fixed": tune.grid_search(fixed_configs(w))}
    tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=tune.RunConfig(name="plain", storage_path=str(workdir)))
    grid = tuner.fit()
    wall = time.perf_counter() - began
    trials, points = [], []
    for result in grid:
        frame = result.metrics_dataframe
        rows = frame.to_dict("records") if frame is not None else []
        trials.append(TrialFigures.from_rows(rows, finished=result.error is None))
        points += [(r["ended_at"] - began_wall, r.get(METRIC)) for r in rows if "ended_at" in r]
    return figures(trials, wall, w.plain_concurrent, best_so_far(points))
