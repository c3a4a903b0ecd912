"""Losses and task metrics, accumulated over batches without a host sync per batch.

An objective is named by a task (`TaskData.objective`) and stored in exported models, so it is plain data:
{"name": "bpc"} | {"name": "accuracy"} | {"name": "rmse", "scale": [per-target std], "offset": [per-target mean],
"loss": "mse" | "l1" | "huber"}. `Objective(spec)` returns the class registered for `spec["name"]` in
`OBJECTIVES`; a new objective is a subclass with a `name` and an entry there (and its metrics in
`trainables.constants.OBJECTIVE_METRICS`).

Each batch gives a 1-D tensor of sums on the batch's device; a split adds them up and reads them once
(`results`), so evaluating costs one device-to-host copy per split, whatever its number of batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainables.constants import OBJECTIVE_METRICS

# The denominator floor of MAPE, as scikit-learn's mean_absolute_percentage_error has it.
MAPE_EPS = float(torch.finfo(torch.float64).eps)
REGRESSION_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}


class Objective:
    """Training loss plus the sums from which a split's loss and metrics are computed once at the end.

    Subclasses give `loss`, `sums` (loss_sum, count, then their own sums) and `values` (metric -> value from
    the sums read back to the host).
    """

    name = ""
    classification = False

    def __new__(cls, spec: dict | None = None):
        # Objective(spec) picks the subclass, so every caller builds one the same way from a task's plain data.
        # spec is optional so that pickle and copy, which call __new__ without arguments, still work.
        if cls is Objective:
            name = spec["name"]
            if name not in OBJECTIVES:
                raise ValueError(f"unknown objective '{name}'; known: {', '.join(sorted(OBJECTIVES))}")
            cls = OBJECTIVES[name]
        return super().__new__(cls)

    def __init__(self, spec: dict):
        self.spec = spec

    @property
    def metrics(self) -> tuple[str, ...]:
        """The validation metrics this objective reports (`val_...`); the first is its usual one."""
        return OBJECTIVE_METRICS[self.name]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(loss_sum, count, ...) for one batch, a 1-D tensor on the batch's device."""
        raise NotImplementedError

    def values(self, loss: float, count: float, sums: list[float]) -> dict[str, float]:
        """Each metric's short name (`accuracy`) -> its value, from the mean loss, the count and the other sums."""
        raise NotImplementedError

    def results(self, sums: torch.Tensor) -> dict[str, float]:
        """{"loss": mean loss, <metric short name>: value, ...} from a split's accumulated sums (one host copy)."""
        host = sums.double().cpu().tolist()
        count = max(host[1], 1.0)
        loss = host[0] / count
        return {"loss": loss, **self.values(loss, count, host[2:])}

    def finish(self, sums: torch.Tensor) -> tuple[float, float]:
        """(mean loss, usual metric) from accumulated sums."""
        results = self.results(sums)
        return results["loss"], results[self.metrics[0].removeprefix("val_")]


class Classification(Objective):
    """Cross entropy over classes, per sample (B, C) or per step (B, T, C)."""

    classification = True

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    def sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        flat, target = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        loss_sum = F.cross_entropy(flat, target, reduction="sum")
        # full_like fills on the device: torch.tensor(n, device=...) would copy from the host every batch.
        return torch.stack([loss_sum, torch.full_like(loss_sum, target.numel())])


class BitsPerChar(Classification):
    """Next-character prediction; metrics: the mean cross entropy in bits, and the perplexity."""

    name = "bpc"

    def values(self, loss: float, count: float, sums: list[float]) -> dict[str, float]:
        # exp overflows past ~709 nats: an untrained or diverged model's perplexity is then reported as inf.
        return {"bpc": loss / math.log(2.0), "perplexity": math.exp(loss) if loss < 700 else math.inf}


class Accuracy(Classification):
    """Classification; metrics: accuracy, macro-F1 and log loss, from the loss and a confusion matrix."""

    name = "accuracy"

    def sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(loss_sum, count, confusion matrix (C * C, true class major)) for one batch."""
        classes = out.shape[-1]
        flat, target = out.reshape(-1, classes), y.reshape(-1)
        cells = target * classes + flat.argmax(-1)  # (N,) index of (true, predicted) in the flat matrix
        # scatter_add into a fixed size: torch.bincount on a GPU reads the largest index back to the host first.
        confusion = torch.zeros(classes * classes, dtype=flat.dtype, device=flat.device)
        confusion.scatter_add_(0, cells, torch.ones_like(cells, dtype=flat.dtype))
        return torch.cat([super().sums(out, y), confusion])

    def values(self, loss: float, count: float, sums: list[float]) -> dict[str, float]:
        classes = math.isqrt(len(sums))
        confusion = torch.tensor(sums, dtype=torch.float64).reshape(classes, classes)  # (true, predicted)
        tp = confusion.diagonal()
        fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
        # As scikit-learn's f1_score(average="macro"): the classes present in the targets or the predictions.
        present = (tp + fp + fn) > 0
        f1 = (2 * tp / (2 * tp + fp + fn).clamp(min=1))[present].mean()
        total = float(confusion.sum())
        return {"accuracy": float(tp.sum()) / max(total, 1.0), "f1": float(f1), "log_loss": loss}


class Regression(Objective):
    """A loss on standardized targets (`spec["loss"]`: mse, l1 or huber; mse by default); metrics RMSE, MAE
    and MAPE in the targets' own units.

    spec["scale"] and spec["offset"] hold each target's standard deviation and mean, which turn a
    standardized value back into units (offset 0 when absent, as in models exported before it existed).
    """

    name = "rmse"

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.scale = spec.get("scale")
        self.offset = spec.get("offset") or [0.0] * len(self.scale or [1.0])
        self.loss_fn = REGRESSION_LOSSES[spec.get("loss") or "mse"]
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(out, y)

    def sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(loss_sum, count, squared error, absolute error, absolute percentage error) in units, for one batch."""
        scale, offset = self._units(out)
        err = (out - y).abs() * scale  # (B, O) in the targets' units
        truth = (y * scale + offset).abs().clamp(min=MAPE_EPS)
        loss_sum = self.loss_fn(out, y, reduction="sum")
        count = torch.full_like(loss_sum, err.numel())
        return torch.stack([loss_sum, count, (err**2).sum(), err.sum(), (err / truth).sum()])

    def _units(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-target (std, mean) on `like`'s device, copied from the host once, not once per batch."""
        if self._cache is None or self._cache[0].device != like.device or self._cache[0].dtype != like.dtype:
            scale = torch.as_tensor(self.scale if self.scale is not None else [1.0], dtype=like.dtype, device=like.device)
            self._cache = scale, torch.as_tensor(self.offset, dtype=like.dtype, device=like.device)
        return self._cache

    def values(self, loss: float, count: float, sums: list[float]) -> dict[str, float]:
        return {"rmse": math.sqrt(sums[0] / count), "mae": sums[1] / count, "mape": sums[2] / count}


OBJECTIVES: dict[str, type[Objective]] = {c.name: c for c in (BitsPerChar, Accuracy, Regression)}
