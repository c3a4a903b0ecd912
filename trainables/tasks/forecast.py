"""Next-step forecasting of a univariate or multivariate time series from a CSV; metric: validation RMSE.

Default series: yearly sunspot numbers 1700-2008 (bundled, see trainables/data/README.md). RMSE is
reported in the original units of the target columns, although the models train on standardized values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.constants import RMSE
from trainables.tasks.base import DATA_DIR, DataError, ModelSpec, Split, TaskData, numeric_columns, read_csv, split_sizes

BUILTIN = DATA_DIR / "sunspots.csv"
BUILTIN_TIME_COLUMN = "year"


def load(options) -> TaskData:
    """Reads the series, standardizes it with training statistics and cuts it into (window -> next step) pairs.

    Splits are chronological: the first windows train, the next validate, the last test, so no future value
    leaks into training.
    """
    path = Path(options.data) if options.data else BUILTIN
    frame = read_csv(path)
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
    values = numeric_columns(frame, columns, path, "task.columns")  # (N, F)
    window = options.window
    n_samples = len(values) - window
    if n_samples < 1:
        raise DataError(
            f"task.window: {window} must be smaller than the series length {len(values)} of '{path}'"
        )
    n_train, n_val, n_test = split_sizes(
        n_samples, options.val_fraction, options.test_fraction, source=f"task.data: '{path}'"
    )
    # Statistics from the values the training windows can see, never from validation or test.
    seen = values[: n_train + window]
    mean = seen.mean(axis=0)
    std = seen.std(axis=0)
    std[std == 0] = 1.0
    scaled = (values - mean) / std
    target_index = [columns.index(t) for t in targets]
    starts = np.arange(n_samples)
    x = np.stack([scaled[s : s + window] for s in starts]).astype(np.float32)  # (N, T, F)
    y = scaled[starts + window][:, target_index].astype(np.float32)  # (N, O)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n_samples)}
    splits = {name: Split(x=x[a:b], y=y[a:b]) for name, (a, b) in bounds.items()}
    return TaskData(
        kind="forecast",
        spec=ModelSpec("sequence", len(columns), len(targets), seq_len=window, per_step=False),
        splits=splits,
        objective={"name": "rmse", "scale": std[target_index].astype(float).tolist()},
        metric=RMSE,
        mode="min",
        preprocessing={
            "columns": columns,
            "targets": targets,
            "window": window,
            "mean": mean.astype(float).tolist(),
            "std": std.astype(float).tolist(),
        },
        source=str(path),
    )
