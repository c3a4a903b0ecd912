"""Losses and task metrics, accumulated over batches without a host sync per batch.

An objective is named by a task (`TaskData.objective`) and stored in exported models, so it is plain data:
{"name": "bpc"} | {"name": "accuracy"} | {"name": "rmse", "scale": [per-target std]}.
`Objective(spec)` returns the class registered for `spec["name"]` in `OBJECTIVES`; a new objective is a
subclass with a `name` and an entry there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Objective:
    """Training loss plus the sums from which a split's loss and metric are computed once at the end.

    Subclasses give `loss`, `sums` (loss_sum, metric_sum, count) and `metric` (the split's metric from them).
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

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(loss_sum, metric_sum, count) for one batch, as a tensor on the batch's device."""
        raise NotImplementedError

    def metric(self, loss: float, metric_sum: float, count: float) -> float:
        """The split's metric from its mean loss and accumulated sums."""
        raise NotImplementedError

    def finish(self, sums: torch.Tensor) -> tuple[float, float]:
        """(mean loss, metric) from accumulated sums."""
        loss_sum, metric_sum, count = (float(v) for v in sums.cpu())
        loss = loss_sum / count
        return loss, self.metric(loss, metric_sum, count)


class Classification(Objective):
    """Cross entropy over classes, per sample (B, C) or per step (B, T, C); sums count the correct argmaxes."""

    classification = True

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    def sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(loss_sum, correct, count) for one batch, as a tensor on the batch's device."""
        flat, target = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        loss_sum = F.cross_entropy(flat, target, reduction="sum")
        correct = (flat.argmax(-1) == target).sum().to(loss_sum.dtype)
        # full_like fills on the device: torch.tensor(n, device=...) would copy from the host every batch.
        return torch.stack([loss_sum, correct, torch.full_like(loss_sum, target.numel())])


class BitsPerChar(Classification):
    """Next-character prediction; metric: the mean cross entropy in bits instead of nats."""

    name = "bpc"

    def metric(self, loss: float, metric_sum: float, count: float) -> float:
        return loss / math.log(2.0)


class Accuracy(Classification):
    """Classification; metric: the fraction of predictions whose argmax is the label."""

    name = "accuracy"

    def metric(self, loss: float, metric_sum: float, count: float) -> float:
        return metric_sum / count


class Regression(Objective):
    """Mean squared error on standardized targets; metric: RMSE in the targets' original units.

    spec["scale"] holds each target's standard deviation, which turns a standardized error back into units.
    """

    name = "rmse"

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.scale = spec.get("scale")
        self._variance_cache: torch.Tensor | None = None

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, y)

    def sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(loss_sum, squared error in original units, count) for one batch, on the batch's device."""
        err = (out - y) ** 2  # (B, O) in standardized units
        scale = self._variance(err)
        # Squared error in original units: each target's error times its variance.
        total = err.sum()
        return torch.stack([total, (err * scale).sum(), torch.full_like(total, err.numel())])

    def _variance(self, like: torch.Tensor) -> torch.Tensor:
        """Per-target variance on `like`'s device, copied from the host once, not once per batch."""
        cached = self._variance_cache
        if cached is None or cached.device != like.device or cached.dtype != like.dtype:
            cached = torch.as_tensor(self.scale, dtype=like.dtype, device=like.device) ** 2
            self._variance_cache = cached
        return cached

    def metric(self, loss: float, metric_sum: float, count: float) -> float:
        return math.sqrt(metric_sum / count)


OBJECTIVES: dict[str, type[Objective]] = {c.name: c for c in (BitsPerChar, Accuracy, Regression)}
