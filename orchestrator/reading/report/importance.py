"""Hyperparameter importance by fANOVA (Optuna's evaluator) over a run's trials.

Computed once per report (in the `Context`): the importance section shows it, and the parallel
coordinates order their axes by it.
"""

from __future__ import annotations

from typing import Any

from orchestrator.reading import results as R

MIN_TRIALS_FOR_IMPORTANCE = 5  # fANOVA fits a forest to (hyperparameters -> metric); fewer points say nothing
# Optuna's default of 64 trees gave a different top hyperparameter for each seed on the 16-trial quickstart;
# with 512 the top three stayed the same across seeds, for about a second of fitting. fANOVA's cost (pure Python)
# grows with the trees and, per tree, with its leaves times its splits: grown to one leaf per trial, 512 trees over
# 330 trials took minutes. So each tree stops at FANOVA_DEPTH (at most 64 leaves: a run of up to ~64 trials is
# split as far as it would be anyway), and a larger run gets fewer trees, down to FANOVA_MIN_TREES: with more trials
# each tree is steadier (measured on a simulated 330-trial and 2,000-trial run, `benchmarks/large_run.py`: the shares
# of the top two hyperparameters moved by under 0.02 between seeds and against unlimited depth).
FANOVA_TREES = 512
FANOVA_TREES_AT = 16  # trials up to which every one of FANOVA_TREES trees is fitted; above, trees fall as 1 / trials
FANOVA_MIN_TREES = 64
FANOVA_DEPTH = 6


def varying(scored: list[R.TrialRecord], hp: dict[str, dict]) -> list[str]:
    """Hyperparameter names whose value differs between the scored trials: family, then the model's, then training."""
    names = {k for t in scored for k in hp[t.trial_id]}
    changing = [n for n in names if len({repr(hp[t.trial_id].get(n)) for t in scored}) > 1]
    return sorted(changing, key=lambda n: (n != "family", not n.startswith("model/"), n))


def _distribution(values: list, log: bool):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return FloatDistribution(float(min(values)), float(max(values)), log=log and min(values) > 0)
    return CategoricalDistribution(sorted(set(values), key=str))


def fanova_importance(scored: list[R.TrialRecord], metric: str, mode: str, hp: dict[str, dict], log_names: set[str]) -> dict[str, Any]:
    """fANOVA importance (Optuna) over the hyperparameters every scored trial has; conditional ones are listed apart.

    The target is each trial's best value, the number the leaderboard ranks by; trials ASHA stopped early
    count with the value they reached, so this says what mattered for doing well under this schedule.
    `importances` is ordered most important first.
    """
    out: dict[str, Any] = {"metric": metric, "method": "fANOVA (optuna.importance.FanovaImportanceEvaluator)",
                           "n_trials": len(scored), "importances": {}, "conditional": [], "note": None}
    names = varying(scored, hp)
    out["conditional"] = [n for n in names if any(n not in hp[t.trial_id] for t in scored)]
    names = [n for n in names if n not in out["conditional"]]
    if len(scored) < MIN_TRIALS_FOR_IMPORTANCE or not names:
        out["note"] = (f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} trials with a {metric} value and one hyperparameter "
                       f"that varied; this run has {len(scored)} and {len(names)}")
        return out
    out["importances"] = _fit(scored, metric, mode, hp, names, log_names)
    return out


def fanova_trees(n_trials: int) -> int:
    """How many trees the forest has for a run of `n_trials` scored trials (see FANOVA_TREES)."""
    return max(FANOVA_MIN_TREES, min(FANOVA_TREES, FANOVA_TREES * FANOVA_TREES_AT // max(n_trials, 1)))


def _fit(scored, metric: str, mode: str, hp: dict, names: list[str], log_names: set[str]) -> dict[str, float]:
    """One Optuna study holding the trials (their shared hyperparameters and best values), evaluated by fANOVA."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scored = sorted(scored, key=lambda t: t.trial_id)  # the forest depends on row order: same run, same numbers
    dists = {n: _distribution([hp[t.trial_id][n] for t in scored], n in log_names) for n in names}
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    study.add_trials([
        optuna.trial.create_trial(params={n: hp[t.trial_id][n] for n in names}, distributions=dists, value=t.best(metric, mode))
        for t in scored
    ])
    evaluator = FanovaImportanceEvaluator(n_trees=fanova_trees(len(scored)), max_depth=FANOVA_DEPTH, seed=0)
    importances = get_param_importances(study, evaluator=evaluator, params=names)
    return {k: float(v) for k, v in importances.items()}
