"""A trial's hyperparameters, and the one place that knows their shape in a Ray Tune config.

In Tune's config a trial is {"arch": {"family": f, "model": {...}}, <training keys>...}: the family and its
sub-space travel together, which is how a conditional (per-family) search space samples them. Everything
else (searchers, readers, TensorBoard, the export) goes through `TrialConfig.from_tune` / `to_tune` and
`flat()`. This module imports no torch, so that reading a finished run stays fast; the optimizer and LR
schedule builders import it only when a trial is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ARCH = "arch"  # the key of the conditional family choice in a Tune config
FAMILY = "family"  # the flat name of the family column in tables, HParams and leaderboards
MODEL_PREFIX = "model/"  # flat names of a family's own hyperparameters: `model/hidden_size`


def _adam(params, t):
    import torch

    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def _adamw(params, t):
    import torch

    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)


def _sgd(params, t):
    import torch

    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


def _rmsprop(params, t):
    import torch

    return torch.optim.RMSprop(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


def _cosine(opt, epochs):
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))


def _step(opt, epochs):
    import torch

    return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.3)


# name -> builder(parameters, TrainConfig) -> torch optimizer
OPTIMIZERS = {"adam": _adam, "adamw": _adamw, "sgd": _sgd, "rmsprop": _rmsprop}
# name -> builder(optimizer, max_epochs) -> torch LR scheduler, or None
LR_SCHEDULES = {"none": lambda opt, epochs: None, "cosine": _cosine, "step": _step}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of the optimization, shared by every family."""

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd and rmsprop only
    batch_size: int = 64
    grad_clip: float = 0.0  # max gradient norm; 0 turns clipping off
    lr_schedule: str = "none"  # none | cosine | step, over the experiment's max_epochs

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, but got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, but got {self.lr_schedule!r}")
        if not self.lr > 0 or self.batch_size < 1 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f"`lr > 0`, `batch_size >= 1`, `weight_decay >= 0` and `grad_clip >= 0` must hold, but got {self}")


TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# Task options a search space may search (its `task:` section): forecast's `window`, the first thing a forecaster
# tunes. Each value's data is prepared once per run and shared by every trial that draws it.
TASK_KEYS = ("window",)


@dataclass(frozen=True)
class TrialConfig:
    """One trial's hyperparameters: the family, its module's values and the training values."""

    family: str
    model: dict[str, Any]
    train: TrainConfig = field(default_factory=TrainConfig)
    task: dict[str, Any] = field(default_factory=dict)  # the searched task options (`TASK_KEYS`) this trial drew

    @classmethod
    def from_tune(cls, config: dict[str, Any]) -> "TrialConfig":
        arch = config[ARCH]
        train = {k: v for k, v in config.items() if k in TRAIN_KEYS}
        task = {k: config[k] for k in TASK_KEYS if k in config}
        return cls(arch[FAMILY], dict(arch.get("model") or {}), TrainConfig(**train), task)

    @staticmethod
    def to_tune(family: str, model: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
        """A Tune config from its parts (train: only the keys the space sets, searched task options included; the
        rest keep their defaults)."""
        return {ARCH: {FAMILY: family, "model": dict(model)}, **train}

    def flat(self) -> dict[str, Any]:
        """Flat, scalar hyperparameters (`family`, `model/hidden_size`, `lr`, ..., `window` when searched) for tables
        and HParams."""
        out: dict[str, Any] = {FAMILY: self.family}
        out.update({f"{MODEL_PREFIX}{k}": v for k, v in sorted(self.model.items())})
        out.update(dataclasses.asdict(self.train))
        out.update(sorted(self.task.items()))
        return out

    def seed(self, base: int) -> int:
        """A seed that is the same for the same config and base seed, and differs between configs."""
        digest = hashlib.sha256(json.dumps([base, self.flat()], sort_keys=True, default=str).encode()).hexdigest()
        return int(digest[:8], 16)


def family_of(config: dict[str, Any], default: str = "?") -> str:
    """The family of a Tune config, or `default` for a config of another shape (a trial of a foreign run)."""
    arch = config.get(ARCH)
    return arch.get(FAMILY, default) if isinstance(arch, dict) else default


def trial_dirname(trial) -> str:
    """A Tune trial's short, stable name, `<family>_<trial id>`: its directory, and its run in each tracker."""
    return f"{family_of(trial.config, 'trial')}_{trial.trial_id}"
