"""The one training loop: a trial's config, its state, one epoch of training and an evaluation.

Everything here is a plain function of a config and data (no globals, no Ray), so a trainable, a test
or a benchmark can drive it, and one process can host several trials.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainables import constants as C
from trainables.models import build_model
from trainables.objectives import Objective
from trainables.tasks.base import ModelSpec, TaskData
from trainables.trial import LR_SCHEDULES, OPTIMIZERS, TrialConfig

EVAL_BATCH = 1024


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


@dataclass(frozen=True)
class Shard:
    """Which share of every batch this process trains: rank `rank` of `size` data-parallel workers.

    Every worker holds the same trial state (same seed, same generator), so all draw the same shuffled order;
    each step takes `batch_size x size` samples of it and worker `rank` trains on its `rank`-th slice. With
    gradients averaged by DDP, one step equals a single-process step on the combined batch.
    """

    rank: int = 0
    size: int = 1


ALONE = Shard()


@dataclass
class TrialState:
    """What a running trial owns; saved and restored whole by checkpoints."""

    config: TrialConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    epoch: int = 0
    # What trains: the model itself, or its DistributedDataParallel wrapper on a data-parallel worker (which
    # averages the gradients in `backward`). Checkpoints and evaluation use `model`, so a state dict never
    # depends on how many workers trained it.
    train_model: nn.Module | None = None

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
        self.apply_train_config()

    def apply_train_config(self) -> None:
        """Puts this config's optimizer values into the optimizer, whose loaded state holds the checkpoint's own.

        The same values when a trial resumes its own checkpoint; new ones when population-based training
        continues a trial from another's checkpoint with mutated hyperparameters. The learning rate keeps the
        position of the LR schedule: it is scaled by the new rate over the one the schedule started from.
        """
        t = self.config.train
        for group in self.optimizer.param_groups:
            if "initial_lr" in group:  # set by an LR schedule: the rate it started from
                group["lr"] = group["lr"] * (t.lr / group["initial_lr"])
                group["initial_lr"] = t.lr
            else:
                group["lr"] = t.lr
            group["weight_decay"] = t.weight_decay
            if "momentum" in group:
                group["momentum"] = t.momentum
        if self.scheduler is not None and hasattr(self.scheduler, "base_lrs"):
            self.scheduler.base_lrs = [t.lr for _ in self.scheduler.base_lrs]


def build_trial(config: TrialConfig, spec: ModelSpec, device: torch.device, *, seed: int, max_epochs: int,
                families=None) -> TrialState:
    """A fresh, seeded model with its optimizer and LR schedule; `families`: a registry with the user's
    families (`trainables.models.registry_for`), the built-ins by default."""
    torch.manual_seed(seed)
    model = build_model(config.family, config.model, spec, families).to(device)
    optimizer = OPTIMIZERS[config.train.optimizer](model.parameters(), config.train)
    scheduler = LR_SCHEDULES[config.train.lr_schedule](optimizer, max_epochs)
    generator = torch.Generator().manual_seed(seed)
    return TrialState(config, model, optimizer, scheduler, generator)


def train_epoch(state: TrialState, data: DeviceData, objective: Objective, *, max_steps: int | None = None,
                shard: Shard = ALONE) -> dict[str, float]:
    """One pass over the shuffled training split (or `max_steps` steps); returns the epoch's train figures.

    On a data-parallel worker (`shard`), each step trains this worker's slice of a `batch_size x size` batch,
    and the figures returned are the whole group's. The loss is summed on the device and read once at the
    end: a `.item()` per step would stall the GPU on every batch.
    """
    model, opt, cfg = state.train_model or state.model, state.optimizer, state.config.train
    x, y = data.x["train"], data.y["train"]
    order = torch.randperm(len(x), generator=state.generator).to(data.device)
    step = cfg.batch_size * shard.size
    # Every worker must take the same number of steps (each step's backward waits for all of them), so a last
    # batch too small to give each worker a sample is left out, by all of them alike.
    starts = range(0, len(x) - shard.size + 1, step) if shard.size > 1 else range(0, len(x), step)
    if max_steps is not None:
        starts = starts[:max_steps]
    model.train()
    lr = opt.param_groups[0]["lr"]
    total = torch.zeros((), device=data.device)
    seen = 0
    began = time.perf_counter()
    for start in starts:
        idx = order[start : start + step]
        if shard.size > 1:
            idx = idx.tensor_split(shard.size)[shard.rank]
        loss = objective.loss(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        total += loss.detach() * len(idx)
        seen += len(idx)
    sums = torch.stack([total.double(), torch.tensor(float(seen), dtype=torch.float64, device=data.device)])
    if shard.size > 1:
        torch.distributed.all_reduce(sums)  # the group's loss and sample count, not this worker's share
    total_loss, count = sums.tolist()  # the one host sync of the epoch
    train_loss, seen = total_loss / max(count, 1), int(count)
    elapsed = time.perf_counter() - began
    if state.scheduler is not None:
        state.scheduler.step()
    state.epoch += 1
    return {C.TRAIN_LOSS: train_loss, C.LEARNING_RATE: lr, C.EPOCH_TIME: elapsed, C.SAMPLES_PER_S: seen / max(elapsed, 1e-9)}


@torch.no_grad()
def split_metrics(model: nn.Module, data: DeviceData, split: str, objective: Objective) -> dict[str, float]:
    """Every figure of `model` on one split, named for it: {"val_loss", "val_accuracy", "val_f1", ...}.

    The batches' sums stay on the device and are read once, at the end.
    """
    model.eval()
    x, y = data.x[split], data.y[split]
    total = None
    for start in range(0, len(x), EVAL_BATCH):
        sums = objective.sums(model(x[start : start + EVAL_BATCH]), y[start : start + EVAL_BATCH]).to(torch.float64)
        total = sums if total is None else total + sums
    return {f"{split}_{name}": value for name, value in objective.results(total).items()}


def evaluate(model: nn.Module, data: DeviceData, split: str, objective: Objective) -> tuple[float, float]:
    """(mean loss, the objective's usual metric) of `model` on one split."""
    results = split_metrics(model, data, split, objective)
    return results[f"{split}_loss"], results[f"{split}_{objective.metrics[0].removeprefix('val_')}"]


def run_epoch(state: TrialState, data: DeviceData, objective: Objective, metric: str, *, max_steps: int | None = None,
              shard: Shard = ALONE) -> dict[str, Any] | None:
    """Trains one epoch and validates; the result every trial reports (the loss and every metric of the task),
    with `diverged` set on a NaN/inf loss or metric. Of a data-parallel group only rank 0 validates (its
    weights are every worker's); the others return None."""
    result: dict[str, Any] = train_epoch(state, data, objective, max_steps=max_steps, shard=shard)
    if shard.rank != 0:
        return None
    result.update(split_metrics(state.model, data, "val", objective))
    result[C.EPOCH] = state.epoch
    result[C.DIVERGED] = not all(math.isfinite(result[k]) for k in (C.TRAIN_LOSS, C.VAL_LOSS, metric))
    return result
