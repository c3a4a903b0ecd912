"""Checking what a user's loader returned: `{"train": (x, y), "val": (x, y), "test": (x, y)}` of NumPy arrays
or torch tensors, optionally with "vocab_size" and "classes". Every rule broken is a DataError naming the split,
the array and the rule; nothing is guessed silently.

No torch here: a tensor is converted through its own `.numpy()`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainables.tasks.base import SPLITS, DataError

EXTRA_KEYS = ("vocab_size", "classes")


def as_array(value: Any, what: str) -> np.ndarray:
    """`value` (an array, a tensor, nested lists) as a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, possibly on a GPU
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"task.loader: {what} is not an array: {exc}") from None


def raw_splits(result: Any, ref: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The (x, y) arrays of each split the loader returned, with lengths checked; "train" is required."""
    if not isinstance(result, dict):
        raise DataError(
            f"task.loader: {ref} must return a dict {{'train': (x, y), 'val': (x, y), 'test': (x, y)}}, "
            f"but returned a {type(result).__name__}"
        )
    unknown = sorted(set(map(str, result)) - set(SPLITS) - set(EXTRA_KEYS))
    if unknown or "train" not in result:
        problem = f"unknown key '{unknown[0]}'" if unknown else "no 'train' split"
        raise DataError(f"task.loader: {ref} returned {problem}; keys: {', '.join(SPLITS + EXTRA_KEYS)} ('train' required)")
    splits = {}
    for name in (s for s in SPLITS if s in result):
        pair = result[name]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError(f"task.loader: {ref} returned '{name}' as a {type(pair).__name__}; each split must be a pair (x, y)")
        x, y = as_array(pair[0], f"{name} x"), as_array(pair[1], f"{name} y")
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise DataError(
                f"task.loader: mismatched lengths in '{name}': x has {len(x) if x.ndim else 'no'} samples, "
                f"y has {len(y) if y.ndim else 'no'}"
            )
        if len(x) == 0:
            raise DataError(f"task.loader: split '{name}' is empty")
        splits[name] = (x, y)
    return splits


def input_kind(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """"vector" for (N, F), "sequence" for (N, T, F) numbers, "tokens" for (N, T) integers; one for all splits."""
    x = splits["train"][0]
    for name, (other, _) in splits.items():
        if other.shape[1:] != x.shape[1:] or other.dtype.kind != x.dtype.kind:
            raise DataError(
                f"task.loader: x of '{name}' is {other.dtype} {other.shape[1:]} per sample, but x of 'train' is "
                f"{x.dtype} {x.shape[1:]}; every split needs the same shape and type"
            )
    if x.dtype.kind not in "biuf":
        raise DataError(f"task.loader: x must hold numbers, but x of 'train' has dtype {x.dtype}")
    if x.ndim == 2:
        return "tokens" if x.dtype.kind in "iu" else "vector"
    if x.ndim == 3:
        return "sequence"
    raise DataError(
        f"task.loader: x of 'train' has shape {x.shape}; expected (N, F) float rows, (N, T, F) float sequences "
        "or (N, T) integer tokens"
    )


def check_finite(splits: dict[str, tuple[np.ndarray, np.ndarray]], which: int, what: str) -> None:
    """Refuses NaN and infinity in the inputs (which=0) or targets (which=1), naming the first one."""
    for name, pair in splits.items():
        a = pair[which]
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise DataError(f"task.loader: {what} of '{name}' holds {a[index]} at index {index}; every value must be finite")


def token_vocab(splits, declared: int | None) -> int:
    """The vocabulary size of token inputs: the declared one (ids checked against it), else the largest id + 1."""
    low = min(int(x.min()) for x, _ in splits.values())
    high = max(int(x.max()) for x, _ in splits.values())
    if low < 0:
        raise DataError(f"task.loader: token ids must be >= 0, but x holds {low}")
    if declared is not None and high >= declared:
        raise DataError(f"task.loader: token id {high} is out of range for vocab_size {declared} (ids 0..{declared - 1})")
    return declared if declared is not None else high + 1


def problem_of(y: np.ndarray, requested: str) -> str:
    """"classification" or "regression": the requested one, or under "auto" what `y` holds (integers, booleans
    and text are classes; floats are values)."""
    if requested != "auto":
        return requested
    return "classification" if y.dtype.kind in "biuUSO" else "regression"


def class_ids(splits, classes: list | None) -> tuple[dict[str, np.ndarray], list]:
    """Each split's labels as class ids (N,) int64 and the class names: `classes` if the loader gave them, the
    sorted distinct labels of text `y`, else the ids 0..C-1 themselves."""
    ys = {name: y for name, (_, y) in splits.items()}
    for name, y in ys.items():
        if y.ndim != 1:
            raise DataError(f"task.problem: classification needs y of shape (N,) with one class per sample, but y of '{name}' is {y.shape}")
    kind = ys["train"].dtype.kind
    if kind in "USO":
        labels = sorted({str(v) for y in ys.values() for v in y}) if classes is None else [str(c) for c in classes]
        index = {label: i for i, label in enumerate(labels)}
        for name, y in ys.items():
            unknown = [v for v in y if str(v) not in index]
            if unknown:
                raise DataError(f"task.loader: label {unknown[0]!r} of '{name}' is not in classes: {', '.join(labels)}")
        return {name: np.array([index[str(v)] for v in y], dtype=np.int64) for name, y in ys.items()}, labels
    for name, y in ys.items():
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            bad = y[np.flatnonzero(np.mod(y, 1) != 0)[0]]
            raise DataError(f"task.problem: classification needs integer class ids, but y of '{name}' holds {bad} (use problem: regression)")
    ids = {name: y.astype(np.int64) for name, y in ys.items()}
    low, high = min(int(y.min()) for y in ids.values()), max(int(y.max()) for y in ids.values())
    count = len(classes) if classes is not None else high + 1
    if low < 0 or high >= count:
        bad = low if low < 0 else high
        raise DataError(f"task.loader: label {bad} is out of range: class ids must be 0..{count - 1}" +
                        (f" ({count} classes given)" if classes is not None else ""))
    if count < 2:
        raise DataError("task.loader: classification needs at least 2 classes, but y holds only class 0")
    names = list(classes) if classes is not None else list(range(count))
    return ids, [c.item() if hasattr(c, "item") else c for c in names]


def regression_targets(splits) -> dict[str, np.ndarray]:
    """Each split's targets as (N, O) float32, refusing text and non-finite values."""
    out = {}
    for name, (_, y) in splits.items():
        if y.dtype.kind not in "biuf":
            raise DataError(f"task.problem: regression needs numeric y, but y of '{name}' has dtype {y.dtype} (use problem: classification)")
        if y.ndim not in (1, 2):
            raise DataError(f"task.loader: y of '{name}' has shape {y.shape}; regression needs (N,) or (N, O)")
        out[name] = y.reshape(len(y), -1).astype(np.float32)
    check_finite({name: (None, y) for name, y in out.items()}, 1, "y")
    return out
