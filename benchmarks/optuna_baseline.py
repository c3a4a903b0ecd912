"""The Optuna contender: TPE sampler + SuccessiveHalvingPruner in Optuna's default one-process loop.

Data is loaded and staged once (trials run one after another in this process); the search space is the
same declarative space the orchestrator uses, translated to Optuna's define-by-run calls below.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from benchmarks.workload import (
    METRIC, TrialFigures, Workload, device_for, figures, fixed_configs, load_data, search_space, startup_trials, trial_seed,
)


def suggest_value(trial, name: str, domain: Any) -> Any:
    """One hyperparameter of a declarative space, drawn through Optuna (constants pass through)."""
    from search_spaces import Choice, LogUniform, QUniform, RandInt, Uniform

    if isinstance(domain, Choice):
        return trial.suggest_categorical(name, list(domain.options))
    if isinstance(domain, RandInt):
        return trial.suggest_int(name, domain.low, domain.high - 1)  # the space's high is excluded, Optuna's included
    if isinstance(domain, QUniform):
        if domain.log:
            # Optuna has no stepped log scale: draw on the log scale and round to the step, as hyperopt's qloguniform does.
            value = round(trial.suggest_float(name, domain.low, domain.high, log=True) / domain.q) * domain.q
            value = min(max(value, domain.low), domain.high)
            return int(round(value)) if domain.integer else float(value)
        if domain.integer:
            return trial.suggest_int(name, domain.low, domain.high, step=domain.q)
        return trial.suggest_float(name, domain.low, domain.high, step=domain.q)
    if isinstance(domain, LogUniform):
        return trial.suggest_float(name, domain.low, domain.high, log=True)
    if isinstance(domain, Uniform):
        return trial.suggest_float(name, domain.low, domain.high)
    return domain


def suggest_config(trial, space) -> dict[str, Any]:
    """A config in the orchestrator's shape ({"arch": {"family", "model"}, <train>}) from an Optuna trial."""
    families = list(space.families)
    family = trial.suggest_categorical("family", families) if len(families) > 1 else families[0]
    # Per-family names keep the conditional branches apart, like the hyperopt translation's labels.
    model = {k: suggest_value(trial, f"{family}/{k}", v) for k, v in space.families[family].items()}
    return {"arch": {"family": family, "model": model}, **{k: suggest_value(trial, k, v) for k, v in space.train.items()}}


def run(w: Workload, workdir: Path) -> dict[str, Any]:
    began = time.perf_counter()
    import optuna

    from trainables.objectives import Objective
    from trainables.training import DeviceData, TrialConfig, build_trial, run_epoch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data(w)
    device = device_for(w.gpu_per_trial)
    staged, objective = DeviceData.stage(data, device), Objective(data.objective)
    space, fixed = search_space(), fixed_configs(w) if w.work == "fixed" else None
    trials: list[TrialFigures] = []

    def objective_fn(trial) -> float:
        config = fixed[trial.number] if fixed else suggest_config(trial, space)
        state = build_trial(TrialConfig.from_tune(config), data.spec, device, seed=trial_seed(config, w.seed), max_epochs=w.max_epochs)
        rows: list[dict[str, Any]] = []
        try:
            for epoch in range(1, w.max_epochs + 1):
                rows.append(run_epoch(state, staged, objective, METRIC, max_steps=w.steps_per_epoch))
                value = rows[-1][METRIC]
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
    return figures(trials, time.perf_counter() - began, 1)
