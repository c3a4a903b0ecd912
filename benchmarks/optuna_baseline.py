"""The Optuna contender: TPE sampler + SuccessiveHalvingPruner in Optuna's default one-process loop.

Data is loaded and staged once (trials run one after another in this process); the search space is the
same declarative space the orchestrator uses, translated to Optuna's define-by-run calls by
`search_spaces.optuna_space.suggest`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from benchmarks.workload import (
    METRIC,
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
from search_spaces.optuna_space import suggest


def run(w: Workload, workdir: Path) -> dict[str, Any]:
    began, began_wall = time.perf_counter(), time.time()
    import optuna

    from trainables.objectives import Objective
    from trainables.training import DeviceData, TrialConfig, build_trial, run_epoch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data(w)
    device = device_for(w.gpu_per_trial)
    staged, objective = DeviceData.stage(data, device), Objective(data.objective)
    space, fixed = search_space(), fixed_configs(w) if w.work == "fixed" else None
    trials: list[TrialFigures] = []
    points: list[tuple[float, float]] = []

    def objective_fn(trial) -> float:
        config = fixed[trial.number] if fixed else suggest(trial, space)
        state = build_trial(TrialConfig.from_tune(config), data.spec, device, seed=trial_seed(config, w.seed), max_epochs=w.max_epochs)
        rows: list[dict[str, Any]] = []
        try:
            for epoch in range(1, w.max_epochs + 1):
                rows.append(run_epoch(state, staged, objective, METRIC, max_steps=w.steps_per_epoch))
                value = rows[-1][METRIC]
                points.append((time.time() - began_wall, value))
                if not math.isfinite(value):
                    raise optuna.TrialPruned()  # a diverged trial: nothing more to learn from it
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return value
        finally:
            trials.append(TrialFigures.from_rows(rows))

    if w.work == "search":
        sampler = optuna.samplers.TPESampler(seed=w.seed, n_startup_trials=startup_trials(w))
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=w.grace_period, reduction_factor=w.reduction_factor, min_early_stopping_rate=0)
    else:
        sampler, pruner = optuna.samplers.RandomSampler(seed=w.seed), optuna.pruners.NopPruner()
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    study.optimize(objective_fn, n_trials=w.num_trials)
    return figures(trials, time.perf_counter() - began, 1, best_so_far(points))
