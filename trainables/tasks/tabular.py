"""Classification or regression on a CSV with a named target column; metric: validation accuracy or RMSE.

Default: the UCI handwritten digits (1797 8x8 images, 10 classes), bundled (see trainables/data/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.constants import ACCURACY, RMSE
from trainables.tasks.base import DATA_DIR, DataError, ModelSpec, Split, TaskData, numeric_columns, read_csv, split_sizes

BUILTIN = DATA_DIR / "digits.csv.gz"
BUILTIN_TARGET = "digit"
# An integer target with at most this many distinct values is taken as class labels under problem: auto.
MAX_AUTO_CLASSES = 50


def problem_kind(target, requested: str) -> str:
    import pandas as pd

    if requested != "auto":
        return requested
    if not pd.api.types.is_numeric_dtype(target):
        return "classification"
    integral = pd.api.types.is_integer_dtype(target) or bool(np.all(np.mod(target.to_numpy(), 1) == 0))
    return "classification" if integral and target.nunique() <= MAX_AUTO_CLASSES else "regression"


def load(options) -> TaskData:
    """Reads the table, encodes the target, standardizes features with training statistics, splits at random (seeded)."""
    path = Path(options.data) if options.data else BUILTIN
    frame = read_csv(path)
    target_name = options.target if options.target else (BUILTIN_TARGET if not options.data else None)
    if target_name is None:
        raise DataError(f"task.target: required with your own data '{path}'; columns: {', '.join(map(str, frame.columns))}")
    if target_name not in frame.columns:
        raise DataError(
            f"task.target: column '{target_name}' is not in '{path}'; columns: {', '.join(map(str, frame.columns))}"
        )
    features = [c for c in frame.columns if c != target_name]
    if not features:
        raise DataError(f"task.data: '{path}' has no feature columns besides the target '{target_name}'")
    x = numeric_columns(frame, features, path, "task.data")
    target = frame[target_name]
    if target.isna().any():
        row = int(np.flatnonzero(target.isna().to_numpy())[0])
        raise DataError(f"task.target: column '{target_name}' of '{path}' has an empty value in row {row + 2}")
    problem = problem_kind(target, options.problem)
    n_train, n_val, n_test = split_sizes(len(frame), options.val_fraction, options.test_fraction, source=f"task.data: '{path}'")
    order = np.random.default_rng(options.split_seed).permutation(len(frame))
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    mean = x[parts["train"]].mean(axis=0)
    std = x[parts["train"]].std(axis=0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    preprocessing = {"features": features, "target": target_name, "mean": mean.astype(float).tolist(), "std": std.astype(float).tolist()}
    if problem == "classification":
        labels = sorted(target.unique().tolist(), key=str)
        if len(labels) < 2:
            raise DataError(f"task.target: column '{target_name}' of '{path}' has a single class {labels[0]!r}")
        index = {label: i for i, label in enumerate(labels)}
        y = target.map(index).to_numpy(dtype=np.int64)
        out, objective, metric, mode = len(labels), {"name": "accuracy"}, ACCURACY, "max"
        preprocessing["labels"] = [label if isinstance(label, str) else label.item() if hasattr(label, "item") else label for label in labels]
    else:
        try:
            raw = target.to_numpy(dtype=np.float32)
        except ValueError as exc:
            raise DataError(f"task.target: column '{target_name}' of '{path}' must be numeric for regression") from exc
        t_mean, t_std = float(raw[parts["train"]].mean()), float(raw[parts["train"]].std() or 1.0)
        y = ((raw - t_mean) / t_std).reshape(-1, 1).astype(np.float32)
        out, objective, metric, mode = 1, {"name": "rmse", "scale": [t_std]}, RMSE, "min"
        preprocessing.update(target_mean=t_mean, target_std=t_std)
    preprocessing["problem"] = problem
    return TaskData(
        kind="tabular",
        spec=ModelSpec("vector", len(features), out, per_step=False),
        splits={name: Split(x=x[idx], y=y[idx]) for name, idx in parts.items()},
        objective=objective,
        metric=metric,
        mode=mode,
        preprocessing=preprocessing,
        source=str(path),
    )
