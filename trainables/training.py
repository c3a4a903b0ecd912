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

import numpy as np
import torch
from torch import nn

from trainables import constants as C
from trainables.models import build_model
from trainables.objectives import Objective
from trainables.tasks.base import ModelSpec, TaskData, Windows
from trainables.trial import LR_SCHEDULES, OPTIMIZERS, TrialConfig

EVAL_BATCH = 1024


class ArraySplit:
    """A split of arrays on the device: a batch is the rows of its inputs and targets."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[start:stop], self.y[start:stop]


class TokenSplit:
    """A split of token windows on the device: its ids once, in their compact dtype; a batch gathers its windows
    and widens only them to the int64 a model's embedding and the loss take (`trainables.tasks.base.Windows`)."""

    def __init__(self, ids: torch.Tensor, seq_len: int, unsigned16: bool):
        self.ids, self.seq_len = ids, seq_len
        # uint16 ids travel as their int16 bit pattern (indexing uint16 tensors is not supported on every device);
        # widening masks the sign back off.
        self.unsigned16 = unsigned16
        self.offsets = torch.arange(seq_len + 1, device=ids.device)

    def __len__(self) -> int:
        return (len(self.ids) - 1) // self.seq_len

    def _widen(self, ids: torch.Tensor) -> torch.Tensor:
        wide = ids.long()
        return wide & 0xFFFF if self.unsigned16 else wide

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self._widen(self.ids[idx[:, None] * self.seq_len + self.offsets])  # (B, seq_len + 1)
        return w[:, :-1], w[:, 1:]

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        stop = min(stop, len(self))
        w = self._widen(self.ids[start * self.seq_len : stop * self.seq_len + 1])
        n = stop - start
        return w[:-1].view(n, self.seq_len), w[1:].view(n, self.seq_len)


@dataclass
class DeviceData:
    """A task's splits on one device, staged once per worker and reused by all its trials; `samples`: the window
    indices a search validates on, for a split too large to evaluate whole every epoch."""

    splits: dict[str, ArraySplit | TokenSplit]
    samples: dict[str, torch.Tensor]
    device: torch.device

    @classmethod
    def stage(cls, data: TaskData, device: torch.device) -> "DeviceData":
        # Arrays from Ray's object store are read-only views of shared memory, and a large corpus is a read-only
        # memory map; on the CPU the tensors share them (no copy per worker) and the loop never writes to its
        # data, so torch's warning does not apply.
        splits, samples = {}, {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            for name, s in data.splits.items():
                if isinstance(s, Windows):
                    ids = np.asarray(s.ids)
                    unsigned16 = ids.dtype == np.uint16
                    splits[name] = TokenSplit(torch.as_tensor(ids.view(np.int16) if unsigned16 else ids).to(device),
                                              s.seq_len, unsigned16)
                    if s.sample is not None:
                        samples[name] = torch.as_tensor(s.sample, dtype=torch.int64).to(device)
                else:
                    splits[name] = ArraySplit(torch.as_tensor(s.x).to(device), torch.as_tensor(s.y).to(device))
        return cls(splits, samples, device)


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


def short_epoch_order(seed: int, n: int, epoch: int, size: int) -> torch.Tensor:
    """The `size` sample indices that short epoch `epoch` (counted from 0) trains on, when an epoch is fewer steps
    than a pass (`max_steps`): successive short epochs take successive slices of one seeded permutation per pass
    over the `n` samples, so each takes new samples and every sample is trained once per pass. A plain function
    of the trial's seed and its epoch, which its checkpoint keeps: a resumed trial continues where it was."""
    parts, at = [], epoch * size
    while size > 0:
        rank, offset = divmod(at, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1_000_003 * (rank + 1)))
        part = perm[offset : offset + size]
        parts.append(part)
        at, size = at + len(part), size - len(part)
    return torch.cat(parts)


def train_epoch(state: TrialState, data: DeviceData, objective: Objective, *, max_steps: int | None = None,
                shard: Shard = ALONE) -> dict[str, float]:
    """One pass over the shuffled training split (or `max_steps` steps); returns the epoch's train figures.

    On a data-parallel worker (`shard`), each step trains this worker's slice of a `batch_size x size` batch,
    and the figures returned are the whole group's. The loss is summed on the device and read once at the
    end: a `.item()` per step would stall the GPU on every batch.
    """
    model, opt, cfg = state.train_model or state.model, state.optimizer, state.config.train
    train = data.splits["train"]
    step = cfg.batch_size * shard.size
    # Every worker must take the same number of steps (each step's backward waits for all of them), so a last
    # batch too small to give each worker a sample is left out, by all of them alike.
    starts = range(0, len(train) - shard.size + 1, step) if shard.size > 1 else range(0, len(train), step)
    if max_steps is not None and max_steps < len(starts):
        order = short_epoch_order(state.generator.initial_seed(), len(train), state.epoch, max_steps * step).to(data.device)
        starts = range(0, len(order), step)
    else:
        order = torch.randperm(len(train), generator=state.generator).to(data.device)
    model.train()
    lr = opt.param_groups[0]["lr"]
    total = torch.zeros((), device=data.device)
    seen = 0
    began = time.perf_counter()
    for start in starts:
        idx = order[start : start + step]
        if shard.size > 1:
            idx = idx.tensor_split(shard.size)[shard.rank]
        x, y = train.batch(idx)
        loss = objective.loss(model(x), y)
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
def split_metrics(model: nn.Module, data: DeviceData, split: str, objective: Objective, *,
                  sampled: bool = False) -> dict[str, float]:
    """Every figure of `model` on one split, named for it: {"val_loss", "val_accuracy", "val_f1", ...}: on all of
    it, or with `sampled` (a search's every epoch) on its fixed sample when the data has one (`DeviceData.samples`).

    The batches' sums stay on the device and are read once, at the end.
    """
    model.eval()
    part, sample = data.splits[split], data.samples.get(split) if sampled else None
    total = None
    for start in range(0, len(part) if sample is None else len(sample), EVAL_BATCH):
        if sample is None:
            x, y = part.rows(start, start + EVAL_BATCH)
        else:
            x, y = part.batch(sample[start : start + EVAL_BATCH])
        sums = objective.sums(model(x), y).to(torch.float64)
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
    result.update(split_metrics(state.model, data, "val", objective, sampled=True))
    result[C.EPOCH] = state.epoch
    result[C.DIVERGED] = not all(math.isfinite(result[k]) for k in (C.TRAIN_LOSS, C.VAL_LOSS, metric))
    return result
