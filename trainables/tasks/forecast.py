"""Next-step forecasting of a univariate or multivariate time series from a CSV; metric: validation RMSE.

Default series: yearly sunspot numbers 1700-2008 (bundled, see trainables/data/README.md). RMSE is
reported in the original units of the target columns, although the models train on standardized values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field

from trainables.constants import MAE, MAPE, RMSE, modes
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
from trainables.tasks.tables import Missing, fill_missing, numeric_frame, read_csv

BUILTIN = DATA_DIR / "sunspots.csv"
BUILTIN_TIME_COLUMN = "year"
METRICS = modes(RMSE, MAE, MAPE)


class ForecastTask(TaskBase):
    """Options of `task: {kind: forecast}`."""

    kind: Literal["forecast"]
    window: int = Field(24, ge=1, description="past steps each forecast sees")
    horizon: int = Field(1, ge=1, description="steps ahead to forecast, jointly (one output per step and target)")
    season: Optional[int] = Field(None, ge=2, description="the series' season in steps (7 for daily data with a weekly "
                                  "cycle): adds the seasonal naive baseline")
    columns: Optional[list[str]] = Field(None, description="series columns; all but time_column when absent")
    targets: Optional[list[str]] = Field(None, description="columns to forecast; all columns when absent")
    time_column: Optional[str] = None
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    missing: Missing = Field("error", description="empty cells: error, drop their rows, ffill, or interpolate")
    loss: RegressionLoss = Field("mse", description="training loss on standardized values: mse, l1 or huber")


def series_columns(frame, options: ForecastTask, path: Path) -> tuple[list[str], list[str]]:
    """(value columns the models see, target columns they forecast), checked against the file's columns."""
    time_column = options.time_column if options.data else BUILTIN_TIME_COLUMN
    if time_column is not None and time_column not in frame.columns:
        raise DataError(
            f"task.time_column: column '{time_column}' is not in '{path}'; columns: {', '.join(map(str, frame.columns))}"
        )
    columns = list(options.columns) if options.columns else [c for c in frame.columns if c != time_column]
    if not columns:
        raise DataError(f"task.columns: '{path}' has no value columns besides the time column '{time_column}'")
    targets = list(options.targets) if options.targets else columns
    unknown = [t for t in targets if t not in columns]
    if unknown:
        raise DataError(f"task.targets: '{unknown[0]}' is not one of the series' columns: {', '.join(columns)}")
    return columns, targets


def next_step_pairs(scaled: np.ndarray, window: int, target_index: list[int], horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every window of `window` steps (N, T, F) float32 and the targets' values at the `horizon` steps after it,
    step major: (N, H * O), the O targets of the first step, then of the second..."""
    starts = np.arange(len(scaled) - window - horizon + 1)
    x = np.stack([scaled[s : s + window] for s in starts]).astype(np.float32)  # (N, T, F)
    ahead = np.stack([scaled[starts + window + h][:, target_index] for h in range(horizon)], axis=1)  # (N, H, O)
    y = ahead.reshape(len(starts), -1).astype(np.float32)  # (N, H * O)
    return x, y


def _window_that_fits(length: int, options: ForecastTask) -> int | None:
    """The longest window, at most a quarter of a series of `length` steps, that leaves every split its samples;
    None when none does."""
    for window in range(length // 4, 0, -1):
        try:
            split_sizes(length - window, options.val_fraction, options.test_fraction, source="")
            return window
        except DataError:
            continue
    return None


def load(options: ForecastTask) -> TaskData:
    """The series' data: prepared (`prepare`), or memory-mapped from the data cache when a long series was prepared
    with these options before (`trainables.tasks.table_cache`)."""
    path = Path(options.data) if options.data else BUILTIN
    return load_table(options, path, lambda: prepare(options, path))


def prepare(options: ForecastTask, path: Path) -> TaskData:
    """Reads the series, standardizes it with training statistics and cuts it into (window -> next step) pairs.

    Splits are chronological: the first windows train, the next validate, the last test, so no future value
    leaks into training.
    """
    frame = read_csv(path)
    columns, targets = series_columns(frame, options, path)
    values = numeric_frame(frame, columns, path, "task.columns")
    values = fill_missing(values, columns, options.missing, path, series=True).to_numpy(dtype=np.float32)  # (N, F)
    window, horizon = options.window, options.horizon
    n_samples = len(values) - window - horizon + 1
    if n_samples < 1:
        fits = _window_that_fits(len(values), options)
        raise DataError(f"task.window: {window} must be smaller than the series length {len(values)} of '{path}'",
                        Setting("task.window", (str(fits),), purpose=" (short enough to leave every split samples)") if fits else None)
    n_train, n_val, n_test = split_sizes(
        n_samples, options.val_fraction, options.test_fraction, source=f"task.data: '{path}'"
    )
    # Statistics from the values the training windows can see, never from validation or test.
    seen = values[: n_train + window + horizon - 1]
    mean = seen.mean(axis=0)
    std = seen.std(axis=0)
    std[std == 0] = 1.0
    target_index = [columns.index(t) for t in targets]
    x, y = next_step_pairs((values - mean) / std, window, target_index, horizon)
    # A sample's targets run `horizon` steps past its window: the last horizon - 1 samples of training and of
    # validation are left out, so that no target of one split is a target of the next (purged splits).
    gap = horizon - 1
    if min(n_train, n_val) <= gap:
        raise DataError(f"task.horizon: {horizon} steps leave no training or validation sample of '{path}' "
                        f"({n_train} and {n_val} before leaving out the {gap} whose targets run into the next split)")
    bounds = {"train": (0, n_train - gap), "val": (n_train, n_train + n_val - gap), "test": (n_train + n_val, n_samples)}
    splits = {name: Split(x=x[a:b], y=y[a:b]) for name, (a, b) in bounds.items()}
    return TaskData(
        kind="forecast",
        spec=ModelSpec("sequence", len(columns), len(targets) * horizon, seq_len=window, per_step=False),
        splits=splits,
        # Metrics in units, averaged over every step of the horizon (each output its target's scale).
        objective={"name": "rmse", "scale": std[target_index].astype(float).tolist() * horizon,
                   "offset": mean[target_index].astype(float).tolist() * horizon, "loss": options.loss},
        metric=RMSE,
        mode=METRICS[RMSE],
        preprocessing={
            "columns": columns,
            "targets": targets,
            "window": window,
            "horizon": horizon,
            "season": options.season,
            "mean": mean.astype(float).tolist(),
            "std": std.astype(float).tolist(),
        },
        source=str(path),
    )


def predict(model, rows) -> np.ndarray:
    """Next values of the targets, in the series' units, from `rows`: (T, F) or (N, T, F) raw values of the columns.
    (N, O) for a next-step model; (N, H, O) for one trained with `horizon` H > 1."""
    p = model.preprocessing
    x = np.asarray(rows, dtype=np.float32)
    x = x[None] if x.ndim == 2 else x
    x = (x - np.asarray(p["mean"], np.float32)) / np.asarray(p["std"], np.float32)
    horizon = p.get("horizon", 1)  # models exported before horizons forecast one step
    idx = [p["columns"].index(t) for t in p["targets"]]
    out = model.outputs(x).reshape(len(x), horizon, len(idx))  # (N, H, O) in standardized units
    values = out * np.asarray(p["std"], np.float32)[idx] + np.asarray(p["mean"], np.float32)[idx]
    return values[:, 0] if horizon == 1 else values


def step_errors(outputs: np.ndarray, targets: np.ndarray, preprocessing: dict) -> dict[str, list[float]]:
    """The error at each step of the horizon, in the series' units: {"rmse": [H values], "mae": [H values]}, each over
    every sample and target, from a split's outputs and targets (N, H * O) in standardized units, step-major."""
    horizon, idx = preprocessing.get("horizon", 1), [preprocessing["columns"].index(t) for t in preprocessing["targets"]]
    scale = np.asarray(preprocessing["std"], np.float64)[idx]
    err = (np.asarray(outputs, np.float64) - np.asarray(targets, np.float64)).reshape(len(outputs), horizon, len(idx)) * scale
    return {"rmse": np.sqrt((err**2).mean(axis=(0, 2))).tolist(), "mae": np.abs(err).mean(axis=(0, 2)).tolist()}


TASK = Task(
    name="forecast",
    options=ForecastTask,
    load=load,
    input_kind="sequence",
    metrics=METRICS,
    default_space="forecast",
    description="next-step time-series forecast from a CSV; metrics val_rmse, val_mae, val_mape",
    predict=predict,
)
