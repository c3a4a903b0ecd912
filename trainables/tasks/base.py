"""What a task is and what it hands to the training loop.

`Task` is the one record a task is described by (its options, loader, metrics, default search space and
how to use a model trained on it); `TaskData` is what its loader returns: arrays per split, the model's
input/output shape, and its objective. A task is loaded once, by the driver; trials receive the `TaskData`
through Ray's object store and never read or parse files themselves.

No torch here: the orchestrator validates configs and reads finished runs with this module alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

SPLITS = ("train", "val", "test")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class TaskBase(BaseModel):
    """Options every task accepts under `task:` in an experiment file; each task's options model extends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Optional[str] = Field(None, description="your own data file; the built-in dataset when absent")
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    steps_per_epoch: Optional[int] = Field(None, ge=1, description="cap on training batches per epoch; a full pass when absent")


class DataError(ValueError):
    """A data file or task option that cannot be used; the message names the file, the value and the rule."""


@dataclass(frozen=True)
class ModelSpec:
    """The contract between a task and any model family: what goes in, what must come out.

    input_kind: "tokens" (B, T) int64 ids, "sequence" (B, T, F) float32, or "vector" (B, F) float32.
    in_features: vocabulary size for tokens, number of features otherwise.
    out_features: classes per prediction, or regression targets.
    per_step: True when a prediction is made at every time step (B, T, O), else one per sample (B, O).
    """

    input_kind: str
    in_features: int
    out_features: int
    seq_len: int = 0
    per_step: bool = False

    @property
    def is_sequence(self) -> bool:
        return self.input_kind in ("tokens", "sequence")


@dataclass(frozen=True)
class Split:
    """Inputs and targets of one split, ready to batch along the first axis."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class TaskData:
    """A loaded, preprocessed task: everything a trial needs and nothing it must compute again.

    objective: {"name": "bpc" | "accuracy" | "rmse", ...parameters} (see trainables.objectives).
    preprocessing: JSON-able facts needed to use a trained model on new data (vocabulary, scalers);
    it is stored in the exported model.
    """

    kind: str
    spec: ModelSpec
    splits: dict[str, Split]
    objective: dict[str, Any]
    metric: str
    mode: str
    preprocessing: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def summary(self) -> str:
        sizes = ", ".join(f"{name} {len(self.splits[name])}" for name in SPLITS)
        return f"{self.kind} on {self.source} ({sizes} samples)"


def no_usage(model_path: Any) -> list[tuple[str, str]]:
    """The usage lines of a task whose models need no more than `load_model` (and `predict`)."""
    return []


@dataclass(frozen=True)
class Task:
    """A registered task: everything the orchestrator, the trainable and an exported model need to know of it.

    name: the `task.kind` that selects it in an experiment file.
    options: the pydantic model of its options (a `TaskBase` with `kind: Literal[name]`).
    load: options -> TaskData; reads, preprocesses and splits the data.
    input_kind: what its models receive: "tokens", "sequence" or "vector" (see ModelSpec).
    metrics: every validation metric it can report -> "min" | "max", the direction that is better; the
        first is the usual one, and `TaskData.metric` names the one a load reports (always one of these).
    default_space: the bundled search space (search_spaces/<name>.yaml) that suits it.
    description: one line for `orchestrator list`.
    predict: (ExportedModel, raw rows) -> predictions in the data's units, or None when it has no such use.
    usage: path of an exported model -> (label, command) lines the end-of-run summary prints.
    """

    name: str
    options: type[TaskBase]
    load: Callable[[Any], TaskData]
    input_kind: str
    metrics: dict[str, str]
    default_space: str
    description: str
    predict: Optional[Callable[[Any, Any], np.ndarray]] = None
    usage: Callable[[Any], list[tuple[str, str]]] = no_usage


def split_sizes(n: int, val_fraction: float, test_fraction: float, *, source: str, minimum: int = 2) -> tuple[int, int, int]:
    """Sizes of train/val/test for `n` samples; refuses data too small to give every split `minimum`."""
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < minimum:
        raise DataError(
            f"{source}: too little data: {n} samples give train/val/test = {n_train}/{n_val}/{n_test}; "
            f"each split needs at least {minimum} (use a larger file or other val/test fractions)"
        )
    return n_train, n_val, n_test


def read_csv(path: Path, *, option: str = "task.data"):
    """Reads a CSV into a DataFrame with errors that name the file (pandas' own name the parser)."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{option}: file not found: '{path}'")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{option}: cannot read '{path}' as CSV: {exc}") from exc
    if frame.empty:
        raise DataError(f"{option}: '{path}' has no data rows")
    return frame


def numeric_columns(frame, columns: list[str], path: Path, key: str) -> np.ndarray:
    """The named columns as float32, refusing missing columns, text and empty cells with the offending cell."""
    import pandas as pd

    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{key}: column '{missing[0]}' is not in '{path}'; columns: {', '.join(map(str, frame.columns))}"
        )
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{key}: column '{column}' of '{path}' must be numeric, but row {row + 2} holds "
                f"{frame[column].iloc[row]!r}"
            )
    return frame[columns].to_numpy(dtype=np.float32)
