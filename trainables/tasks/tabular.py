"""Classification or regression on a CSV with a named target column; metric: validation accuracy or RMSE.

Default: the UCI handwritten digits (1797 8x8 images, 10 classes), bundled (see trainables/data/README.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field

from trainables.constants import ACCURACY, F1, LOG_LOSS, MAE, MAPE, RMSE, modes
from trainables.tasks.base import (
    DATA_DIR,
    DataError,
    ModelSpec,
    RegressionLoss,
    Setting,
    Split,
    Task,
    TaskBase,
    TaskData,
    split_sizes,
)
from trainables.tasks.table_cache import load_table
from trainables.tasks.tables import (
    Encoding,
    TableMissing,
    encode_features,
    encode_rows,
    feature_table,
    read_csv,
)

BUILTIN = DATA_DIR / "digits.csv.gz"
BUILTIN_TARGET = "digit"
# An integer target with at most this many distinct values is taken as class labels under problem: auto.
MAX_AUTO_CLASSES = 50
# Classification reports accuracy, macro-F1 and log loss, regression RMSE, MAE and MAPE; the built-in digits
# are a classification problem, so accuracy comes first.
METRICS = modes(ACCURACY, F1, LOG_LOSS, RMSE, MAE, MAPE)


class TabularTask(TaskBase):
    """Options of `task: {kind: tabular}`."""

    kind: Literal["tabular"]
    target: Optional[str] = Field(None, description="target column (required with your own data)")
    problem: Literal["auto", "classification", "regression"] = "auto"
    split_seed: int = 0
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    missing: TableMissing = Field("error", description="empty cells: error, drop their rows, or ffill")
    encoding: Encoding = Field("onehot", description="text feature columns: onehot, or ordinal (category index)")
    loss: Optional[RegressionLoss] = Field(None, description="regression's training loss: mse (default), l1 or huber")


def problem_kind(target, requested: str) -> str:
    """"classification" or "regression": the requested one, or under "auto" what the target column looks like."""
    import pandas as pd

    if requested != "auto":
        return requested
    if not pd.api.types.is_numeric_dtype(target):
        return "classification"
    integral = pd.api.types.is_integer_dtype(target) or bool(np.all(np.mod(target.to_numpy(), 1) == 0))
    return "classification" if integral and target.nunique() <= MAX_AUTO_CLASSES else "regression"


def target_and_features(frame, options: TabularTask, path: Path) -> tuple[str, list[str]]:
    """(target column, feature columns), refusing a missing target and a table with nothing besides it."""
    target = options.target if options.target else (BUILTIN_TARGET if not options.data else None)
    if target is None:
        raise DataError(f"task.target: required with your own data '{path}'; columns: {', '.join(map(str, frame.columns))}")
    if target not in frame.columns:
        raise DataError(
            f"task.target: column '{target}' is not in '{path}'; columns: {', '.join(map(str, frame.columns))}"
        )
    features = [c for c in frame.columns if c != target]
    if not features:
        raise DataError(f"task.data: '{path}' has no feature columns besides the target '{target}'")
    return target, features


def encode_classes(target, where: str) -> tuple[np.ndarray, dict]:
    """Class indices (N,) int64, in the order of the sorted labels, and the labels that decode them."""
    labels = sorted(target.unique().tolist(), key=str)
    if len(labels) < 2:
        raise DataError(f"task.target: {where} has a single class {labels[0]!r}")
    index = {label: i for i, label in enumerate(labels)}
    y = target.map(index).to_numpy(dtype=np.int64)
    # Plain Python values, so that the exported model stays loadable with weights_only=True.
    plain = [label if isinstance(label, str) else label.item() if hasattr(label, "item") else label for label in labels]
    return y, {"labels": plain}


def standardize_values(target, where: str, train: np.ndarray) -> tuple[np.ndarray, dict]:
    """Regression targets (N, 1) float32, standardized with training statistics, and those statistics."""
    try:
        raw = target.to_numpy(dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"task.target: {where} must be numeric for regression") from exc
    t_mean, t_std = float(raw[train].mean()), float(raw[train].std() or 1.0)
    y = ((raw - t_mean) / t_std).reshape(-1, 1).astype(np.float32)
    return y, {"target_mean": t_mean, "target_std": t_std}


def checked_target(frame, name: str, path: Path, missing: str):
    """`frame` without the rows whose target is empty (under `missing: drop`), or an error naming the first such row."""
    empty = frame[name].isna()
    if not empty.any():
        return frame
    if missing == "drop":
        return frame.loc[~empty]
    raise DataError(f"task.target: column '{name}' of '{path}' has an empty value in row {frame.index[np.flatnonzero(empty.to_numpy())[0]]}",
                    Setting("task.missing", ("drop",), purpose=" to leave out the rows without a target"))


def load(options: TabularTask) -> TaskData:
    """The table's data: prepared (`prepare`), or memory-mapped from the data cache when a large table was prepared
    with these options before (`trainables.tasks.table_cache`)."""
    path = Path(options.data) if options.data else BUILTIN
    return load_table(options, path, lambda: prepare(options, path))


def prepare(options: TabularTask, path: Path) -> TaskData:
    """Reads the table, encodes text features and the target, standardizes features with training statistics,
    and splits at random (seeded)."""
    frame = read_csv(path)
    target_name, features = target_and_features(frame, options, path)
    frame = checked_target(frame, target_name, path, options.missing)
    table, text = feature_table(frame, features, path, options.missing)
    frame = frame.loc[table.index]  # rows `missing: drop` left out
    x, encoded = encode_features(table, text, options.encoding)
    del table  # a large table's peak memory: the parsed frame and x, not a third copy
    target, where = frame[target_name], f"column '{target_name}' of '{path}'"
    problem = problem_kind(target, options.problem)
    if problem == "classification" and options.loss is not None:
        raise DataError(f"task.loss: '{options.loss}' is a regression loss, but {where} is a classification target")
    n_train, n_val, n_test = split_sizes(len(frame), options.val_fraction, options.test_fraction, source=f"task.data: '{path}'")
    order = np.random.default_rng(options.split_seed).permutation(len(frame))
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    train = x[parts["train"]]
    mean, std = train.mean(axis=0), train.std(axis=0)
    del train
    std[std == 0] = 1.0
    x -= mean  # in place: the same values as (x - mean) / std without two temporaries of x's size
    x /= std
    x = x.astype(np.float32)
    if problem == "classification":
        y, facts = encode_classes(target, where)
        out, objective, metric = len(facts["labels"]), {"name": "accuracy"}, ACCURACY
    else:
        y, facts = standardize_values(target, where, parts["train"])
        objective = {"name": "rmse", "scale": [facts["target_std"]], "offset": [facts["target_mean"]], "loss": options.loss or "mse"}
        out, metric = 1, RMSE
    preprocessing = {"features": features, "target": target_name, "mean": mean.astype(float).tolist(), "std": std.astype(float).tolist()}
    return TaskData(
        kind="tabular",
        spec=ModelSpec("vector", x.shape[1], out, per_step=False),
        splits={name: Split(x=x[idx], y=y[idx]) for name, idx in parts.items()},
        objective=objective,
        metric=metric,
        mode=METRICS[metric],
        preprocessing={**preprocessing, **facts, **encoded, "problem": problem},
        source=str(path),
    )


def predict(model, rows) -> np.ndarray:
    """Class labels (as in the file: strings stay strings), or values in the target's units for regression, from
    raw `rows`: (F,) or (N, F) values in the file's feature order, text columns as text, or a DataFrame."""
    p = model.preprocessing
    x = encode_rows(rows, p["features"], p)
    x = (x - np.asarray(p["mean"], np.float32)) / np.asarray(p["std"], np.float32)
    out = model.outputs(x)  # (N, classes) logits, or (N, 1) standardized values
    if p["problem"] == "classification":
        return np.asarray(p["labels"], dtype=object)[out.argmax(-1)]
    return out[:, 0] * p["target_std"] + p["target_mean"]


TASK = Task(
    name="tabular",
    options=TabularTask,
    load=load,
    input_kind="vector",
    metrics=METRICS,
    default_space="tabular",
    description="classification / regression on a CSV; metrics val_accuracy, val_f1, val_log_loss or val_rmse, val_mae, val_mape",
    predict=predict,
)
