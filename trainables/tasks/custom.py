"""Your own data through a Python function: `task: {kind: custom, loader: my_data.py:load, <its options>}`.

`load(**options)` returns `{"train": (x, y), "val": (x, y), "test": (x, y)}` (NumPy arrays or torch tensors,
optionally "vocab_size" and "classes"); the shape of `x` gives the input kind: (N, F) float rows -> "vector",
(N, T, F) float sequences -> "sequence", (N, T) integer tokens -> "tokens". `y` holds class ids or labels
(classification) or values (regression). A missing "val" or "test" is carved from "train" with the task's
fractions, and the run says so. The driver calls the loader once; trials get the arrays through Ray's object store.
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
from pydantic import ConfigDict, Field

from trainables.constants import ACCURACY, F1, LOG_LOSS, MAE, MAPE, RMSE, modes
from trainables.tasks import arrays as A
from trainables.tasks.base import (
    SPLITS,
    DataError,
    ModelSpec,
    RegressionLoss,
    Split,
    Task,
    TaskBase,
    TaskData,
)
from trainables.tasks.user_loader import call_loader

METRICS = modes(ACCURACY, F1, LOG_LOSS, RMSE, MAE, MAPE)


class CustomTask(TaskBase):
    """Options of `task: {kind: custom}`; keys besides these are passed to the loader as keyword arguments."""

    # Extra keys are the loader's options; typos of the keys below are caught against the loader's signature.
    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["custom"]
    loader: str = Field(..., description="FILE.py:FUNCTION returning {'train': (x, y), 'val': ..., 'test': ...}")
    problem: Literal["auto", "classification", "regression"] = "auto"
    vocab_size: Optional[int] = Field(None, ge=2, description="token inputs: ids are 0..vocab_size-1 (largest id + 1 when absent)")
    standardize: bool = Field(True, description="scale float inputs by training mean and std (predict does the same)")
    loss: Optional[RegressionLoss] = Field(None, description="regression's training loss: mse (default), l1 or huber")
    split_seed: int = 0


def loader_options(options: CustomTask) -> dict:
    """The keyword arguments of the loader: the task's extra keys, and `data` (resolved) when given."""
    extra = dict(options.model_extra or {})
    return {**extra, "data": options.data} if options.data is not None else extra


def carve(splits: dict, options: CustomTask) -> tuple[dict, list[str]]:
    """Every split present: a missing "val" or "test" taken at random (seeded) out of "train", with notes saying so."""
    missing = [s for s in ("val", "test") if s not in splits]
    if not missing:
        return splits, []
    x, y = splits["train"]
    total = len(x) + sum(len(splits[s][0]) for s in splits if s != "train")
    take = {s: int(round(total * getattr(options, f"{s}_fraction"))) for s in missing}
    if min(take.values()) < 1 or len(x) - sum(take.values()) < 2:
        raise DataError(f"task.loader: 'train' has {len(x)} samples, too few to carve {' and '.join(missing)} from it")
    order = np.random.default_rng(options.split_seed).permutation(len(x))
    out, start, notes = dict(splits), 0, []
    for name in missing:
        idx = order[start : start + take[name]]
        out[name], start = (x[idx], y[idx]), start + take[name]
        notes.append(f"no '{name}' split from the loader: {take[name]} samples of train held out ({getattr(options, f'{name}_fraction'):g})")
    rest = order[start:]
    out["train"] = (x[rest], y[rest])
    return out, notes


def scaled_inputs(splits: dict, kind: str, standardize: bool) -> tuple[dict[str, np.ndarray], dict]:
    """Inputs as the models take them (int64 tokens, float32 otherwise), float ones standardized per feature
    with training statistics; and those statistics for predict."""
    if kind == "tokens":
        return {s: x.astype(np.int64) for s, (x, _) in splits.items()}, {}
    train = splits["train"][0].astype(np.float64)
    axes = tuple(range(train.ndim - 1))  # every axis but the features'
    mean = train.mean(axis=axes) if standardize else np.zeros(train.shape[-1])
    std = train.std(axis=axes) if standardize else np.ones(train.shape[-1])
    std[std == 0] = 1.0
    xs = {s: ((x - mean) / std).astype(np.float32) for s, (x, _) in splits.items()}
    return xs, {"mean": mean.tolist(), "std": std.tolist()}


def targets(splits: dict, problem: str, classes, loss) -> tuple[dict[str, np.ndarray], int, dict, dict]:
    """(y per split, outputs per sample, objective, facts for predict) for the problem."""
    if problem == "classification":
        if loss is not None:
            raise DataError(f"task.loss: '{loss}' is a regression loss, but the problem is classification")
        ys, labels = A.class_ids(splits, classes)
        return ys, len(labels), {"name": "accuracy"}, {"labels": labels}
    ys = A.regression_targets(splits)
    mean, std = ys["train"].mean(axis=0).astype(float), ys["train"].std(axis=0).astype(float)
    std[std == 0] = 1.0
    ys = {s: ((y - mean) / std).astype(np.float32) for s, y in ys.items()}
    objective = {"name": "rmse", "scale": std.tolist(), "offset": mean.tolist(), "loss": loss or "mse"}
    return ys, len(mean), objective, {"target_mean": mean.tolist(), "target_std": std.tolist()}


def load(options: CustomTask) -> TaskData:
    """Calls the user's loader once, checks every array it returned, and builds the task from their shapes."""
    known = sorted(CustomTask.model_fields)
    result = call_loader(options.loader, loader_options(options), known)
    splits = A.raw_splits(result, options.loader)
    kind = A.input_kind(splits)
    if kind != "tokens":
        A.check_finite(splits, 0, "x")
    splits, notes = carve(splits, options)
    problem = A.problem_of(splits["train"][1], options.problem)
    ys, out, objective, facts = targets(splits, problem, result.get("classes"), options.loss)
    xs, scaling = scaled_inputs(splits, kind, options.standardize)
    x = xs["train"]
    if kind == "tokens":
        vocab = A.token_vocab(splits, result.get("vocab_size") or options.vocab_size)
        spec = ModelSpec("tokens", vocab, out, seq_len=x.shape[1])
    else:
        spec = ModelSpec(kind, x.shape[-1], out, seq_len=x.shape[1] if kind == "sequence" else 0)
    metric = ACCURACY if problem == "classification" else RMSE
    return TaskData(
        kind="custom",
        spec=spec,
        splits={s: Split(x=xs[s], y=ys[s]) for s in SPLITS},
        objective=objective,
        metric=metric,
        mode=METRICS[metric],
        preprocessing={"input_kind": kind, "problem": problem, **scaling, **facts},
        source=options.loader + "".join(f"; {note}" for note in notes),
    )


def predict(model, rows) -> np.ndarray:
    """Class labels (the loader's classes, or ids), or values in the targets' units ((N,) for one target,
    else (N, O)), from raw inputs shaped as the loader's x: one sample or a batch."""
    p, spec = model.preprocessing, model.spec
    sample_dims = {"vector": 1, "sequence": 2, "tokens": 1}[spec.input_kind]
    x = np.asarray(rows.detach().cpu().numpy() if hasattr(rows, "detach") else rows)
    x = x[None] if x.ndim == sample_dims else x
    if spec.input_kind == "tokens":
        x = x.astype(np.int64)
    else:
        x = ((x - np.asarray(p["mean"])) / np.asarray(p["std"])).astype(np.float32)
    out = model.outputs(x)  # (N, classes) logits, or (N, O) standardized values
    if p["problem"] == "classification":
        return np.asarray(p["labels"], dtype=object)[out.argmax(-1)]
    values = out * np.asarray(p["target_std"], np.float32) + np.asarray(p["target_mean"], np.float32)
    return values[:, 0] if values.shape[1] == 1 else values


TASK = Task(
    name="custom",
    options=CustomTask,
    load=load,
    input_kind=None,
    metrics=METRICS,
    default_space="custom",
    description="your own arrays from a Python loader (task.loader: FILE.py:FUNCTION); classification or regression",
    predict=predict,
)
