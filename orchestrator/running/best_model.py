"""Exporting the best model of a run: evaluate its best kept checkpoint on validation and test, write `best/`.

The only part of the driver's flow that needs torch after the search; it reads the run through the same
reading layer as `best` and `report`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
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
    """The exported best model: the trial and epoch it came from, its metrics and the file written."""

    trial: R.TrialRecord
    epoch: int
    metrics: dict[str, float]
    path: Path


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


def _load_first_readable(candidates, data: TaskData, run_dir: Path):
    """(model, config, trial, meta, path) of the best candidate whose weights load."""
    import torch

    from trainables.models import build_model

    device = torch.device("cpu")
    families = run_families(run_dir)
    for _value, trial, meta, path in candidates:
        config = TrialConfig.from_tune(trial.config)
        # Only the weights: an optimizer built here would cost its first-use set-up in this process (torch
        # imports its compiler stack then, ~1.5 s) and be thrown away.
        model = build_model(config.family, config.model, data.spec, families).to(device)
        try:
            model.load_state_dict(torch.load(path / C.STATE_FILE, map_location=device, weights_only=True)["model"])
            return model, config, trial, meta, path
        except (OSError, RuntimeError, EOFError, KeyError) as exc:
            # A checkpoint cut short by a crash while it was being copied: fall back to the next best.
            print(f"warning: skipping unreadable checkpoint {path}: {exc}", file=sys.stderr)
    raise UserError(f"{run_dir}: none of the {len(candidates)} checkpoints could be read")


def _evaluate(model, data: TaskData) -> dict[str, float]:
    """Validation and test loss and every task metric of `model` (val_loss, val_accuracy, ..., test_accuracy, ...)."""
    import torch

    from trainables.objectives import Objective
    from trainables.training import DeviceData, split_metrics

    staged, objective = DeviceData.stage(data, torch.device("cpu")), Objective(data.objective)
    return {**split_metrics(model, staged, "val", objective), **split_metrics(model, staged, "test", objective)}


def export_best(run_dir: Path, data: TaskData, metric: str, mode: str, out_path: Path | None = None,
                trials: list[R.TrialRecord] | None = None) -> BestModel:
    """Evaluates the best kept checkpoint of the run on validation and test, and writes `best/` (or `out_path`).

    `trials`: the run's trials when the caller has just read them."""
    from trainables.export import save_model

    candidates = _candidates(trials if trials is not None else R.load_trials(run_dir), metric, mode)
    if not candidates:
        raise UserError(f"{run_dir}: no checkpoint with a {metric} value to export yet")
    model, config, trial, meta, path = _load_first_readable(candidates, data, run_dir)
    metrics = _evaluate(model, data)
    best_dir = run_dir / R.BEST_DIR
    model_path = out_path or best_dir / R.MODEL_FILE
    save_model(
        model_path, family=config.family, model_config=config.model, train_config=config.flat(), spec=data.spec,
        task=data.kind, objective=data.objective, metric=data.metric, preprocessing=data.preprocessing,
        metrics=metrics, state_dict=model.state_dict(), families=run_families(run_dir),
    )
    if out_path is None:
        record = {"trial_id": trial.trial_id, "trial_dir": str(trial.path), "checkpoint": str(path), "epoch": meta["epoch"],
                  "family": config.family, "hyperparameters": config.flat(), "metric": metric, "mode": mode, "metrics": metrics}
        write_text_atomic(best_dir / R.METRICS_FILE, json.dumps(record, indent=2))
        resolved = R.read_experiment(run_dir)
        resolved["best_trial"] = {"trial_id": trial.trial_id, "config": trial.config}
        write_text_atomic(best_dir / R.EXPERIMENT_FILE, yaml.safe_dump(resolved, sort_keys=False))
    return BestModel(trial, meta["epoch"], metrics, model_path)
