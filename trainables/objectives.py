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
            return torch.stack([loss_sum, correct, torch.tensor(float(target.numel()), device=out.device)])
        err = (out - y) ** 2  # (B, O) in standardized units
        scale = torch.as_tensor(self.scale, dtype=err.dtype, device=err.device) ** 2
        # Squared error in original units: each target's error times its variance.
        return torch.stack([err.sum(), (err * scale).sum(), torch.tensor(float(err.numel()), device=out.device)])

    def finish(self, sums: torch.Tensor) -> tuple[float, float]:
        """(mean loss, metric) from accumulated sums."""
        loss_sum, metric_sum, count = (float(v) for v in sums.cpu())
        loss = loss_sum / count
        if self.name == "bpc":
            return loss, loss / math.log(2.0)
        if self.name == "accuracy":
            return loss, metric_sum / count
        return loss, math.sqrt(metric_sum / count)
