"""Losses and task metrics, accumulated over batches without a host sync per batch.

An objective is named by a task (`TaskData.objective`) and stored in exported models, so it is plain data:
{"name": "bpc"} | {"name": "accuracy"} | {"name": "rmse", "scale": [per-target std]}.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Objective:
    """Training loss plus the sums from which a split's loss and metric are computed once at the end."""

    def __init__(self, spec: dict):
        self.name = spec["name"]
        self.scale = spec.get("scale")

    @property
    def classification(self) -> bool:
        return self.name in ("bpc", "accuracy")

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.classification:
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        return F.mse_loss(out, y)

    def sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(loss_sum, metric_sum, count) for one batch, as a tensor on the batch's device."""
        if self.classification:
            flat, target = out.reshape(-1, out.shape[-1]), y.reshape(-1)
            loss_sum = F.cross_entropy(flat, target, reduction="sum")
            correct = (flat.argmax(-1) == target).sum().to(loss_sum.dtype)
            # full_like fills on the device: torch.tensor(n, device=...) would copy from the host every batch.
            return torch.stack([loss_sum, correct, torch.full_like(loss_sum, target.numel())])
        err = (out - y) ** 2  # (B, O) in standardized units
        scale = self._variance(err)
        # Squared error in original units: each target's error times its variance.
        total = err.sum()
        return torch.stack([total, (err * scale).sum(), torch.full_like(total, err.numel())])

    def _variance(self, like: torch.Tensor) -> torch.Tensor:
        """Per-target variance on `like`'s device, copied from the host once, not once per batch."""
        cached = getattr(self, "_variance_cache", None)
        if cached is None or cached.device != like.device or cached.dtype != like.dtype:
            cached = torch.as_tensor(self.scale, dtype=like.dtype, device=like.device) ** 2
            self._variance_cache = cached
        return cached

    def finish(self, sums: torch.Tensor) -> tuple[float, float]:
        """(mean loss, metric) from accumulated sums."""
        loss_sum, metric_sum, count = (float(v) for v in sums.cpu())
        loss = loss_sum / count
        if self.name == "bpc":
            return loss, loss / math.log(2.0)
        if self.name == "accuracy":
            return loss, metric_sum / count
        return loss, math.sqrt(metric_sum / count)
