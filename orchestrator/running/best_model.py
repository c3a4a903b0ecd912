"""Exporting a model of a run: the best trial's (or a chosen trial's) best kept checkpoint, or an ensemble of the
top trials, evaluated on validation and test; the best is written to `best/`.

The only part of the driver's flow that needs torch after the search; it reads the run through the same
reading layer as `best` and `report`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.errors import UserError
from orchestrator.reading import results as R
from trainables import constants as C
from trainables.files import write_text_atomic
from trainables.tasks import TaskData
from trainables.trial import TrialConfig


@dataclass
class BestModel:
    """The exported best model: the trial and epoch it came from, its metrics and the file written; `per_step`: a
    forecast over a horizon's error at each step ({"val_rmse": [...], "test_mae": [...]}), {} otherwise."""

    trial: R.TrialRecord
    epoch: int
    metrics: dict[str, float]
    path: Path
    per_step: dict[str, list[float]] = field(default_factory=dict)
    evaluated_on: str | None = None  # a sampled export: what it evaluated on (`sampled_note`); None: the whole splits


def _candidates(trials: list[R.TrialRecord], metric: str, mode: str) -> list[tuple[float, R.TrialRecord, dict, Path]]:
    """Every kept checkpoint with a usable `metric` value, best first."""
    found = []
    for trial in trials:
        for meta, path in trial.checkpoints():
            value = R.checkpoint_value(meta, metric)
            if value is not None:
                found.append((value, trial, meta, path))
    found.sort(key=lambda c: c[0], reverse=(mode == "max"))
    return found


def run_families(run_dir: Path) -> dict:
    """The family registry of a run: the built-ins and the user's classes its search space named."""
    from search_spaces import SearchSpace
    from trainables.models import ModelRefError, registry_for

    raw = R.read_experiment(run_dir).get("search_space")
    models = SearchSpace.from_run(raw).models if isinstance(raw, dict) else {}
    try:
        return registry_for(models)
    except ModelRefError as exc:
        raise UserError(f"{run_dir}: the run's own model cannot be imported: {exc}") from None


def _load_first_readable(candidates, data: TaskData, run_dir: Path, *, quiet: bool = False):
    """(model, config, trial, meta, path) of the best candidate whose weights load; None when none does and `quiet`."""
    import torch

    from trainables.models import build_model

    device = torch.device("cpu")
    families = run_families(run_dir)
    for _value, trial, meta, path in candidates:
        config = TrialConfig.from_tune(trial.config)
        # Only the weights: an optimizer built here would cost its first-use set-up in this process (torch
        # imports its compiler stack then, ~1.5 s) and be thrown away. Built for the data of the trial's window.
        model = build_model(config.family, config.model, data.variant(config.task).spec, families).to(device)
        try:
            model.load_state_dict(torch.load(path / C.STATE_FILE, map_location=device, weights_only=True)["model"])
            return model, config, trial, meta, path
        except (OSError, RuntimeError, EOFError, KeyError) as exc:
            # A checkpoint cut short by a crash while it was being copied: fall back to the next best.
            print(f"warning: skipping unreadable checkpoint {path}: {exc}", file=sys.stderr)
    if quiet:
        return None
    raise UserError(f"{run_dir}: none of the {len(candidates)} checkpoints could be read")


def _evaluate(model, data: TaskData, sampled: bool = False) -> dict[str, float]:
    """Validation and test loss and every task metric of `model` (val_loss, val_accuracy, ..., test_accuracy, ...), on
    the whole splits, or with `sampled` on the seeded samples a large split has (`sampled_note`)."""
    import torch

    from trainables.objectives import Objective
    from trainables.training import DeviceData, split_metrics

    staged, objective = DeviceData.stage(data, torch.device("cpu")), Objective(data.objective)
    return {**split_metrics(model, staged, "val", objective, sampled=sampled),
            **split_metrics(model, staged, "test", objective, sampled=sampled)}


def sampled_note(data: TaskData) -> str | None:
    """What a sampled export evaluated on ("a seeded sample of ... windows of each split"), None when no split is sampled."""
    sizes = {name: (len(s.sample), len(s)) for name, s in data.splits.items() if getattr(s, "sample", None) is not None}
    if not sizes:
        return None
    return "seeded samples: " + ", ".join(f"{name} {k:,} of {n:,} windows" for name, (k, n) in sizes.items())


def _per_step(model, data: TaskData) -> dict[str, list[float]]:
    """A forecast over a horizon of H > 1 steps: its validation and test error at each step (`forecast.step_errors`)."""
    if data.kind != "forecast" or data.preprocessing.get("horizon", 1) == 1:
        return {}
    import torch

    from trainables.ensemble import outputs_on
    from trainables.tasks.forecast import step_errors
    from trainables.training import DeviceData

    staged, found = DeviceData.stage(data, torch.device("cpu")), {}
    for split in ("val", "test"):
        outputs, targets = outputs_on(model, staged.splits[split])
        found.update({f"{split}_{k}": v for k, v in step_errors(outputs.numpy(), targets.numpy(), data.preprocessing).items()})
    return found


def export_best(run_dir: Path, data: TaskData, metric: str, mode: str, out_path: Path | None = None,
                trials: list[R.TrialRecord] | None = None, sampled: bool = False) -> BestModel:
    """Evaluates the best kept checkpoint of the run on validation and test, and writes `best/` (or `out_path`).

    `trials`: the run's trials when the caller has just read them; `sampled`: evaluate a large split on its seeded
    sample (a run bound by a time budget, whose export must fit it), as `best/metrics.json` then says."""
    from trainables.export import save_model

    candidates = _candidates(trials if trials is not None else R.load_trials(run_dir), metric, mode)
    if not candidates:
        raise UserError(f"{run_dir}: no checkpoint with a {metric} value to export yet")
    model, config, trial, meta, path = _load_first_readable(candidates, data, run_dir)
    data = data.variant(config.task)  # a searched window: the trial's own samples and scalers
    metrics, per_step = _evaluate(model, data, sampled), _per_step(model, data)
    note = sampled_note(data) if sampled else None
    best_dir = run_dir / R.BEST_DIR
    model_path = out_path or best_dir / R.MODEL_FILE
    save_model(
        model_path, family=config.family, model_config=config.model, train_config=config.flat(), spec=data.spec,
        task=data.kind, objective=data.objective, metric=data.metric, preprocessing=data.preprocessing,
        metrics=metrics, state_dict=model.state_dict(), families=run_families(run_dir),
    )
    if out_path is None:
        record = {"trial_id": trial.trial_id, "trial_dir": str(trial.path), "checkpoint": str(path), "epoch": meta["epoch"],
                  "family": config.family, "hyperparameters": config.flat(), "metric": metric, "mode": mode, "metrics": metrics,
                  **({"per_step": per_step} if per_step else {}), **({"evaluated_on": note} if note else {})}
        write_text_atomic(best_dir / R.METRICS_FILE, json.dumps(record, indent=2))
        resolved = R.read_experiment(run_dir)
        resolved["best_trial"] = {"trial_id": trial.trial_id, "config": trial.config}
        write_text_atomic(best_dir / R.EXPERIMENT_FILE, yaml.safe_dump(resolved, sort_keys=False))
    return BestModel(trial, meta["epoch"], metrics, model_path, per_step, note)


@dataclass
class EnsembleModel:
    """An exported ensemble: its members (trial, family, weight, own validation value), metrics and the file written."""

    members: list[dict]
    metrics: dict[str, float]
    path: Path
    record: dict


def export_ensemble(run_dir: Path, data: TaskData, metric: str, mode: str, k: int, out_path: Path | None = None,
                    trials: list[R.TrialRecord] | None = None) -> EnsembleModel:
    """Greedy ensemble selection (`trainables.ensemble.select`) over the best checkpoints of the top `k` trials'
    validation outputs; the ensemble is evaluated on validation and test, written as one model file (`out_path`, or
    `best/ensemble.pt`), and described in `best/ensemble.json` beside the best single model's metrics."""
    import torch

    from trainables.ensemble import Ensemble, outputs_on, select
    from trainables.export import save_ensemble
    from trainables.objectives import Objective
    from trainables.training import DeviceData

    trials = trials if trials is not None else R.load_trials(run_dir)
    ranked = [t for t in R.leaderboard(trials, metric, mode) if t.best_checkpoint(metric, mode) is not None]
    if not ranked:
        raise UserError(f"{run_dir}: no checkpoint with a {metric} value to build an ensemble from yet")
    # Members read the same inputs: with a searched window, the trials of the best trial's window.
    task = TrialConfig.from_tune(ranked[0].config).task
    ranked, data = [t for t in ranked if TrialConfig.from_tune(t.config).task == task], data.variant(task)
    members = []  # (trial, model, meta, path) of the top k trials whose weights load
    for trial in ranked:
        if len(members) == k:
            break
        loaded = _load_first_readable(_candidates([trial], metric, mode), data, run_dir, quiet=True)
        if loaded is not None:
            members.append((trial, loaded[0], loaded[3], loaded[4]))
    staged, objective = DeviceData.stage(data, torch.device("cpu")), Objective(data.objective)
    outputs = [outputs_on(model, staged.splits["val"]) for _, model, _, _ in members]
    targets = outputs[0][1]
    weights, value, singles = select([out for out, _ in outputs], targets, objective, metric, mode)
    kept = [(member, w) for member, w in zip(members, weights) if w > 0]
    ensemble = Ensemble([m[1] for m, _ in kept], [w for _, w in kept], objective.classification)
    metrics = _evaluate(ensemble, data)
    families = run_families(run_dir)
    model_path = out_path or run_dir / R.BEST_DIR / R.ENSEMBLE_MODEL_FILE
    save_ensemble(
        model_path, spec=data.spec, task=data.kind, objective=data.objective, metric=data.metric,
        preprocessing=data.preprocessing, metrics=metrics, families=families,
        members=[{"family": TrialConfig.from_tune(m[0].config).family, "model_config": TrialConfig.from_tune(m[0].config).model,
                  "state_dict": m[1].state_dict(), "trial_id": m[0].trial_id} for m, _ in kept],
        weights=[w for _, w in kept],
    )
    described = [{"trial_id": m[0].trial_id, "family": m[0].family, "weight": w, "epoch": m[2]["epoch"], "checkpoint": str(m[3]),
                  metric: singles[members.index(m)]} for m, w in kept]
    single = R.read_run(run_dir).best_model() if (run_dir / R.BEST_DIR / R.METRICS_FILE).is_file() else None
    record = {"k": k, "candidates": [m[0].trial_id for m in members], "members": described, "metric": metric, "mode": mode,
              "method": "greedy ensemble selection with replacement (Caruana et al., 2004) on validation; the best ensemble met",
              "metrics": metrics, "best_single": {"trial_id": members[0][0].trial_id, metric: singles[0],
                                                  "metrics": single["metrics"] if single else None},
              "path": str(model_path)}
    write_text_atomic(run_dir / R.BEST_DIR / R.ENSEMBLE_FILE, json.dumps(record, indent=2))
    return EnsembleModel(described, metrics, model_path, record)


def export_chosen(run_dir: Path, out: Path, *, trial_id: str | None = None, family: str | None = None, rule: str | None = None,
                  ensemble: int | None = None) -> tuple[BestModel | EnsembleModel | None, str]:
    """What `orchestrator export` and `Run.export` write to `out`: the best model (a copy of `best/model.pt` when the
    run has one: returns None), a trial's (`trial_id`), a family's best, the model a rule picks
    (`selection.pick`), or an ensemble of the top `ensemble` trials; with a line saying which and why."""
    import shutil

    from orchestrator.reading.selection import chosen_trials
    from orchestrator.running.prepare import experiment_from_run, prepare
    from trainables.files import atomic_write

    if sum(x is not None for x in (trial_id, family, rule, ensemble)) > 1:
        raise UserError("trial, family, pick and ensemble each choose the model to export: give one")
    if ensemble is not None and ensemble < 1:
        raise UserError(f"ensemble: value {ensemble}: an ensemble has at least 1 member")
    run = R.read_run(run_dir)
    existing = run.run_dir / R.BEST_DIR / R.MODEL_FILE
    if trial_id is family is rule is ensemble is None and existing.is_file():
        atomic_write(out, lambda tmp: shutil.copyfile(existing, tmp))
        return None, "the best model"
    # The choice is checked before the data is loaded: a wrong trial id costs nothing.
    trials, why = chosen_trials(run.trials(), run.metric, run.mode, run.max_epochs, trial_id=trial_id, family=family, rule=rule)
    p = prepare(experiment_from_run(run.run_dir, trackers=False))  # an export logs to no tracker
    if ensemble is not None:
        return export_ensemble(run.run_dir, p.data, p.metric, p.mode, ensemble, out_path=out, trials=trials), f"an ensemble of the top {ensemble}"
    return export_best(run.run_dir, p.data, p.metric, p.mode, out_path=out, trials=trials), why
