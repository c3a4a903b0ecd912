"""What a task is and what it hands to the training loop.

`Task` is the one record a task is described by (its options, loader, metrics, default search space and
how to use a model trained on it); `TaskData` is what its loader returns: arrays per split, the model's
input/output shape, and its objective. A task is loaded once, by the driver; trials receive the `TaskData`
through Ray's object store (a large corpus or table as the names of its memory-mapped cache files, `Windows`,
`Split`) and never read or parse files themselves.

No torch here: the orchestrator validates configs and reads finished runs with this module alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainables.constants import OBJECTIVE_METRICS

SPLITS = ("train", "val", "test")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class TaskBase(BaseModel):
    """Options every task accepts under `task:` in an experiment file; each task's options model extends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Optional[str] = Field(None, description="your own data file; the built-in dataset when absent")
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    steps_per_epoch: Optional[int] = Field(None, ge=1, description="cap on training batches per epoch; a full pass when absent")


# The training loss of a regression (on standardized targets): `task.loss` of the tasks that regress.
RegressionLoss = Literal["mse", "l1", "huber"]


@dataclass(frozen=True)
class Setting:
    """A task option whose value would fix a DataError, told in the words of the user's input: the key to set in an
    experiment file (`set task.missing to drop or ffill`), or, for `orchestrator run --data FILE`, which has no file
    to edit, the flag that sets it (`add --set task.missing=drop (or ffill)`)."""

    key: str  # "task.missing"
    values: tuple[str, ...] = ()  # the values to suggest, as the file form lists them; none: any value of the user's
    example: Optional[str] = None  # the value the flag form shows first (default: the first of `values`)
    purpose: str = ""  # what setting it does: " to use such a file"

    def told(self, *, flags: bool) -> str:
        if flags:
            first = self.example or (self.values[0] if self.values else "VALUE")
            others = [v for v in self.values if v != first]
            return f"add --set {self.key}={first}" + (f" (or {', '.join(others)})" if others else "") + self.purpose
        if not self.values:
            return f"give {self.key} a value{self.purpose}"
        either = self.values[0] if len(self.values) == 1 else f"{', '.join(self.values[:-1])} or {self.values[-1]}"
        return f"set {self.key} to {either}{self.purpose}"


class DataError(ValueError):
    """A data file or task option that cannot be used; the message names the file, the value and the rule, and
    with `fix` ends with the task option that would fix it: as an experiment file's key in `str(error)`, or as the
    `--set` flag of a `--data` run with `told(flags=True)`."""

    def __init__(self, message: str, fix: Optional[Setting] = None):
        self.message, self.fix = message, fix
        super().__init__(f"{message}; {fix.told(flags=False)}" if fix else message)

    def told(self, *, flags: bool = False) -> str:
        """The message; with `flags`, its fix as the command line's `--set key=value` (the input had no file)."""
        return f"{self.message}; {self.fix.told(flags=True)}" if flags and self.fix else str(self)


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
    """Inputs and targets of one split, ready to batch along the first axis.

    mapped: (x file, y file, start, stop) when `x` and `y` are rows of memory-mapped `.npy` files (a large table's
        prepared arrays, `trainables.tasks.table_cache`): a pickle then carries the names, as `Windows` does.
    """

    x: np.ndarray
    y: np.ndarray
    mapped: Optional[tuple[str, str, int, int]] = None

    def __len__(self) -> int:
        return len(self.x)

    def __reduce__(self):
        if self.mapped is not None and _maps_travel():
            return _mapped_split, self.mapped
        return Split, (np.asarray(self.x), np.asarray(self.y))


@dataclass(frozen=True)
class Windows:
    """A token split as non-overlapping windows over one array of ids: window i is `ids[i*seq_len : (i+1)*seq_len]`
    and its targets are the same ids shifted by one, so `x` and `y` are views of `ids` (no copy of the text).

    ids: (len(self) * seq_len + 1,) in the smallest unsigned dtype that holds the vocabulary (uint8, uint16; int32
        above 65536); widened to int64 only per batch, on the device.
    sample: sorted window indices a search validates on when the split is large (`None`: all of it); the exported
        best model is evaluated on every window.
    mapped: (cache file, start, stop) when `ids` is a slice of a memory-mapped `.npy` (`trainables.tasks.corpus`):
        then a pickle of the split carries the file's name, not its ids, and every process on the node that
        unpickles it (the trials, through Ray's object store) maps the same file pages instead of a copy.
    """

    ids: np.ndarray
    seq_len: int
    sample: Optional[np.ndarray] = None
    mapped: Optional[tuple[str, int, int]] = None

    def __len__(self) -> int:
        return (len(self.ids) - 1) // self.seq_len

    @property
    def x(self) -> np.ndarray:
        """(N, seq_len) inputs: a view of `ids`."""
        n = len(self)
        return self.ids[: n * self.seq_len].reshape(n, self.seq_len)

    @property
    def y(self) -> np.ndarray:
        """(N, seq_len) targets, the inputs shifted by one: a view of `ids`."""
        n = len(self)
        return self.ids[1 : n * self.seq_len + 1].reshape(n, self.seq_len)

    def __reduce__(self):
        if self.mapped is not None and _maps_travel():
            return _mapped_windows, (*self.mapped, self.seq_len, self.sample)
        # Not mapped, or other nodes may not see the cache file: the ids themselves (as a plain array; a memmap
        # pickles its pages into the object store once, like any array).
        return Windows, (np.asarray(self.ids), self.seq_len, self.sample, None)


def _maps_travel() -> bool:
    """Whether a cache file's name is enough for the processes that unpickle a split: always without Ray, and on a
    single-node Ray (every trial sees the driver's disk); a multi-node cluster gets the ids (a node may lack the file)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return True
    return sum(1 for node in ray.nodes() if node.get("Alive")) <= 1


def _map(path: str, start: int, stop: int) -> np.ndarray:
    """Rows `start:stop` of a cache file, mapped again (read-only) in the process that unpickles a mapped split."""
    if not Path(path).is_file():
        raise RuntimeError(
            f"the prepared data cache {path} is missing on this node (removed since the run started, or a node that "
            "does not share the driver's disk joined the cluster); run again to prepare it"
        )
    return np.load(path, mmap_mode="r")[start:stop]


def _mapped_windows(path: str, start: int, stop: int, seq_len: int, sample: Optional[np.ndarray]) -> Windows:
    return Windows(_map(path, start, stop), seq_len, sample, (path, start, stop))


def _mapped_split(x_path: str, y_path: str, start: int, stop: int) -> Split:
    return Split(_map(x_path, start, stop), _map(y_path, start, stop), (x_path, y_path, start, stop))


@dataclass(frozen=True)
class TaskData:
    """A loaded, preprocessed task: everything a trial needs and nothing it must compute again.

    objective: {"name": "bpc" | "accuracy" | "rmse", ...parameters} (see trainables.objectives); it decides
    the metrics every epoch reports (`metrics`).
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
    # One line on what preparing the data took (read, encoded, its size in memory), for runs whose data is large.
    prepared: str = ""
    # The same task prepared for each other value of a task option the space searches ({"window": {12: TaskData}}):
    # shipped with this one, so each trial (`TrialHost`) and the export take the data of the value it drew.
    variants: dict[str, dict[Any, "TaskData"]] = field(default_factory=dict)

    def variant(self, task: dict[str, Any]) -> "TaskData":
        """The data for a trial's searched task options (`TrialConfig.task`): a variant, or this data itself."""
        for key, value in task.items():
            if value in self.variants.get(key, {}):
                return self.variants[key][value]
        return self

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every validation metric this data's objective reports each epoch (`metric` is one of them)."""
        return OBJECTIVE_METRICS[self.objective["name"]]

    def summary(self) -> str:
        sizes = ", ".join(f"{name} {len(self.splits[name])}" for name in SPLITS)
        return f"{self.kind} on {self.source} ({sizes} samples){self.sample_note()}"

    def sample_note(self) -> str:
        """What a search validates on when the validation split is too large to evaluate whole every epoch."""
        val = self.splits["val"]
        sample = getattr(val, "sample", None)
        if sample is None:
            return ""
        n, seq_len = len(val), getattr(val, "seq_len", 1)
        return (f"; validation on a seeded sample of {len(sample):,} of {n:,} windows ({_mb(len(sample) * seq_len)} of "
                f"{_mb(n * seq_len)} characters) during the search, the exported best on all of it (on samples of "
                "validation and test when a --budget bounds the run)")


def _mb(count: int) -> str:
    return f"{count / 1e6:.1f}M"


def no_usage(model_path: Any) -> list[tuple[str, str]]:
    """The usage lines of a task whose models need no more than `load_model` (and `predict`)."""
    return []


@dataclass(frozen=True)
class Task:
    """A registered task: everything the orchestrator, the trainable and an exported model need to know of it.

    name: the `task.kind` that selects it in an experiment file.
    options: the pydantic model of its options (a `TaskBase` with `kind: Literal[name]`).
    load: options -> TaskData; reads, preprocesses and splits the data.
    input_kind: what its models receive: "tokens", "sequence" or "vector" (see ModelSpec); None when the
        data decides (a `custom` loader's array shapes), and the families are then checked once it is loaded.
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
    input_kind: Optional[str]
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
