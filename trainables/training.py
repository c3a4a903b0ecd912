"""The one training loop: a trial's config, its state, one epoch of training and an evaluation.

Everything here is a plain function of a config and data (no globals, no Ray), so a trainable, a test
or a benchmark can drive it, and one process can host several trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainables import constants as C
from trainables.models import MODELS, build_model
from trainables.objectives import Objective
from trainables.tasks.base import ModelSpec, TaskData

OPTIMIZERS = {
    "adam": lambda params, t: torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay),
    "adamw": lambda params, t: torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay),
    "sgd": lambda params, t: torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay),
    "rmsprop": lambda params, t: torch.optim.RMSprop(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay),
}
LR_SCHEDULES = {
    "none": lambda opt, epochs: None,
    "cosine": lambda opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs)),
    "step": lambda opt, epochs: torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.3),
}
EVAL_BATCH = 1024


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


@dataclass(frozen=True)
class TrialConfig:
    """One trial's hyperparameters: the family, its module's values and the training values.

    In Ray Tune's config it is {"arch": {"family": ..., "model": {...}}, <train keys>...}: the family and its
    sub-space travel together, which is how a conditional (per-family) search space samples them.
    """

    family: str
    model: dict[str, Any]
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_tune(cls, config: dict[str, Any]) -> "TrialConfig":
        arch = config["arch"]
        if arch["family"] not in MODELS:
            raise ValueError(f"unknown model family {arch['family']!r}; known: {', '.join(sorted(MODELS))}")
        train = {k: v for k, v in config.items() if k in TRAIN_KEYS}
        return cls(arch["family"], dict(arch.get("model") or {}), TrainConfig(**train))

    def flat(self) -> dict[str, Any]:
        """Flat, scalar hyperparameters (`family`, `model/hidden_size`, `lr`, ...) for tables and HParams."""
        out: dict[str, Any] = {"family": self.family}
        out.update({f"model/{k}": v for k, v in sorted(self.model.items())})
        out.update(dataclasses.asdict(self.train))
        return out

    def seed(self, base: int) -> int:
        """A seed that is the same for the same config and base seed, and differs between configs."""
        digest = hashlib.sha256(json.dumps([base, self.flat()], sort_keys=True, default=str).encode()).hexdigest()
        return int(digest[:8], 16)


@dataclass
class DeviceData:
    """A task's splits as tensors on one device, staged once per worker and reused by all its trials."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    device: torch.device

    @classmethod
    def stage(cls, data: TaskData, device: torch.device) -> "DeviceData":
        # Arrays from Ray's object store are read-only views of shared memory; on the CPU the tensors share
        # them (no copy per worker) and the loop never writes to its data, so torch's warning does not apply.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = {name: torch.as_tensor(s.x).to(device) for name, s in data.splits.items()}
            y = {name: torch.as_tensor(s.y).to(device) for name, s in data.splits.items()}
        return cls(x, y, device)


@dataclass
class TrialState:
    """What a running trial owns; saved and restored whole by checkpoints."""

    config: TrialConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    epoch: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"].cpu())  # generators live on the CPU
        self.epoch = state["epoch"]


def build_trial(config: TrialConfig, spec: ModelSpec, device: torch.device, *, seed: int, max_epochs: int) -> TrialState:
    """A fresh, seeded model with its optimizer and LR schedule."""
    torch.manual_seed(seed)
    model = build_model(config.family, config.model, spec).to(device)
    optimizer = OPTIMIZERS[config.train.optimizer](model.parameters(), config.train)
    scheduler = LR_SCHEDULES[config.train.lr_schedule](optimizer, max_epochs)
    generator = torch.Generator().manual_seed(seed)
    return TrialState(config, model, optimizer, scheduler, generator)


def train_epoch(state: TrialState, data: DeviceData, objective: Objective, *, max_steps: int | None = None) -> dict[str, float]:
    """One pass over the shuffled training split (or `max_steps` batches); returns the epoch's train figures.

    The loss is summed on the device and read once at the end: a `.item()` per step would stall the
    GPU on every batch.
    """
    model, opt, cfg = state.model, state.optimizer, state.config.train
    x, y = data.x["train"], data.y["train"]
    order = torch.randperm(len(x), generator=state.generator).to(data.device)
    starts = range(0, len(x), cfg.batch_size)
    if max_steps is not None:
        starts = starts[:max_steps]
    model.train()
    lr = opt.param_groups[0]["lr"]
    total = torch.zeros((), device=data.device)
    seen = 0
    began = time.perf_counter()
    for start in starts:
        idx = order[start : start + cfg.batch_size]
        loss = objective.loss(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        total += loss.detach() * len(idx)
        seen += len(idx)
    train_loss = float(total) / max(seen, 1)  # the one host sync of the epoch
    elapsed = time.perf_counter() - began
    if state.scheduler is not None:
        state.scheduler.step()
    state.epoch += 1
    return {C.TRAIN_LOSS: train_loss, C.LEARNING_RATE: lr, C.EPOCH_TIME: elapsed, C.SAMPLES_PER_S: seen / max(elapsed, 1e-9)}


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, split: str, objective: Objective) -> tuple[float, float]:
    """(mean loss, task metric) of `model` on one split."""
    model.eval()
    x, y = data.x[split], data.y[split]
    sums = torch.zeros(3, device=data.device, dtype=torch.float64)
    for start in range(0, len(x), EVAL_BATCH):
        out = model(x[start : start + EVAL_BATCH])
        sums += objective.sums(out, y[start : start + EVAL_BATCH]).to(torch.float64)
    return objective.finish(sums)


def run_epoch(state: TrialState, data: DeviceData, objective: Objective, metric: str, *, max_steps: int | None = None) -> dict[str, Any]:
    """Trains one epoch and validates; the result every trial reports, with `diverged` set on a NaN/inf loss."""
    result: dict[str, Any] = train_epoch(state, data, objective, max_steps=max_steps)
    val_loss, val_metric = evaluate(state.model, data, "val", objective)
    result.update({C.VAL_LOSS: val_loss, metric: val_metric, C.EPOCH: state.epoch})
    result[C.DIVERGED] = not all(math.isfinite(result[k]) for k in (C.TRAIN_LOSS, C.VAL_LOSS, metric))
    return result
