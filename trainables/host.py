"""One process's share of a trial: the data staged on its device, the trial's state, and one epoch at a time.

The Tune trainable hosts one in its own process (one device per trial), or starts a group of data-parallel
workers (`trainables.parallel`) that each host one with their `Shard` of every batch. Either way the same
code builds the trial, runs the one training loop and saves or loads its state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import ray
import torch

from trainables import constants as C
from trainables.footprint import count_params, latencies
from trainables.objectives import Objective
from trainables.tasks.base import TaskData
from trainables.training import (
    ALONE,
    DeviceData,
    Shard,
    TrialConfig,
    build_trial,
    run_epoch,
)


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of an experiment shares and a search never changes."""

    metric: str
    mode: str
    max_epochs: int
    steps_per_epoch: int | None = None
    seed: int = 0
    cpus: float = 1.0
    # A file the driver wrote into the run directory: a trial on a node that cannot see it would write its
    # checkpoints to that node's own disk, lost to the run, so it refuses to start instead (None: cloud storage).
    storage_marker: str | None = None
    # The user's families: name -> `model:` reference (an absolute `FILE.py:Class`, `package.module:Class`) or
    # the class itself. `models_shipped`: the files came through Ray's runtime environment (`py_modules`, on a
    # cluster), so a worker imports them by module name instead of reading a path only the driver's machine has.
    models: dict[str, Any] = field(default_factory=dict)
    models_shipped: bool = False
    # Data-parallel workers per trial (`resources.workers`), each with `cpus` CPUs and `gpus` GPUs.
    workers: int = 1
    gpus: float = 0.0
    # The experiment's deployment limits (`limits:`): max_params, max_latency_ms; a model over one is infeasible.
    limits: dict[str, float] = field(default_factory=dict)


def assigned_device() -> torch.device:
    """The GPU Ray assigned this worker (Ray narrows CUDA_VISIBLE_DEVICES to it), else the CPU."""
    if torch.cuda.is_available() and ray.is_initialized() and ray.get_gpu_ids():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def check_storage_visible(marker: str | None, node: str) -> None:
    """Refuses to run a trial on a node that does not see the run directory (a node-local storage path)."""
    if marker and not os.path.exists(marker):
        raise RuntimeError(
            f"storage not shared: node {node} cannot see {os.path.dirname(marker)}, so its checkpoints would stay on "
            "that node; set `storage` to a cloud URI (s3://..., gs://...) or a directory every node mounts"
        )


def user_families(settings: TrialSettings, node: str) -> dict:
    """The family registry with the user's classes imported on this worker; an error says which node lacks what."""
    from trainables.models import ModelRefError, registry_for

    try:
        return registry_for(settings.models, by_name=settings.models_shipped)
    except ModelRefError as exc:
        how = "shipped through Ray's runtime environment (py_modules)" if settings.models_shipped else "read from the driver's path"
        raise RuntimeError(f"node {node} cannot import your model ({how}): {exc}") from None


def to_cpu(value: Any) -> Any:
    """`value` with every tensor on the CPU: a state that travels between processes or devices."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


@dataclass(frozen=True)
class Infeasible:
    """Why a trial's configuration cannot run: one line naming the exception and the user's file and line, and the
    full traceback (the trial keeps it in `infeasible.txt`)."""

    reason: str
    traceback: str
    params: int | None = None  # the model's parameter count, when it was built

    @classmethod
    def of(cls, exc: BaseException, when: str) -> "Infeasible":
        import traceback

        from trainables.models.user import user_error

        return cls(f"{when}: {user_error(exc, None)}", "".join(traceback.format_exception(exc)))

    def result(self) -> dict[str, Any]:
        """The trial's one result: no epoch trained, the losses at the divergence penalty (the trainable sets the
        metric to the worst value, which is how every searcher learns to draw the region less)."""
        result = {C.INFEASIBLE: self.reason, C.EPOCH: 0, C.TRAIN_LOSS: C.DIVERGED_PENALTY, C.VAL_LOSS: C.DIVERGED_PENALTY,
                  C.DIVERGED: False, C.EPOCH_TIME: 0.0, C.SAMPLES_PER_S: 0.0}
        return result if self.params is None else {**result, C.NUM_PARAMS: self.params}


class TrialHost:
    """The trial one process trains: staged once per process, then `start`ed for each trial it hosts."""

    def __init__(self, data: TaskData, settings: TrialSettings, shard: Shard = ALONE):
        self.data, self.settings, self.shard = data, settings, shard
        # Each process gets the cores Ray reserved for it; torch's default (all cores) would oversubscribe.
        torch.set_num_threads(max(1, int(settings.cpus)))
        self.device = assigned_device()
        self.node = ray.util.get_node_ip_address() if ray.is_initialized() else "local"
        self.node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()] if ray.is_initialized() else []
        check_storage_visible(settings.storage_marker, self.node)
        self.families = user_families(settings, self.node)
        self.base = data
        self._staged: dict[int, tuple[TaskData, DeviceData, Objective]] = {}  # per data variant, staged once per process
        self._use(data)
        self.trial = None
        self.infeasible: Infeasible | None = None
        self.footprint: dict[str, Any] = {}

    def _use(self, data: TaskData) -> None:
        """Trains the next trial on `data` (the task, or its variant for a searched window), staged on first use."""
        if id(data) not in self._staged:
            self._staged[id(data)] = (data, DeviceData.stage(data, self.device), Objective(data.objective))
        self.data, self.staged, self.objective = self._staged[id(data)]

    def start(self, config: dict[str, Any]) -> None:
        """Builds the trial of a Tune config, seeded: every worker of a group builds the same weights and order.
        A model that cannot be built (its constructor refuses the combination, or it cannot move to the device)
        makes the trial infeasible: its first epoch reports that instead of training."""
        trial = TrialConfig.from_tune(config)
        self.infeasible, self.epochs_run, self.footprint = None, 0, {}
        self._use(self.base.variant(trial.task))
        try:
            self.trial = build_trial(
                trial, self.data.spec, self.device, seed=trial.seed(self.settings.seed), max_epochs=self.settings.max_epochs,
                families=self.families,
            )
        except torch.cuda.OutOfMemoryError:
            raise  # the device, not the configuration: a failure (retried), not infeasible
        except Exception as exc:  # the user's constructor may raise anything: the trial ends infeasible, with where
            self.trial, self.infeasible = None, Infeasible.of(exc, "building the model")
            return
        params = count_params(self.trial.model)
        self.footprint = {C.NUM_PARAMS: params}
        limit = self.settings.limits.get("max_params")
        if limit is not None and params > limit:
            # Refused before any training: the limit is known from the built model alone.
            self.trial, self.infeasible = None, Infeasible(
                f"limits.max_params: the model has {params:,} parameters, more than {int(limit):,}", "", params)
            return
        if self.shard.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.trial.train_model = DistributedDataParallel(self.trial.model, device_ids=ids)
            # Same weights and shuffle on every worker, but each its own dropout masks for its own shard.
            torch.manual_seed(trial.seed(self.settings.seed) + self.shard.rank)

    def epoch(self) -> dict[str, Any] | None:
        """Trains and validates one epoch; the result with where it ran (None on a group's other ranks). An infeasible
        trial's one result says why (`C.INFEASIBLE`) instead."""
        if self.infeasible is None:
            try:
                result = self._epoch()
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                if self.epochs_run or isinstance(exc, torch.cuda.OutOfMemoryError):
                    raise  # a model that trained an epoch was feasible: a later error is a failure (retried)
                self.infeasible = Infeasible.of(exc, "its first batch")  # a shape the model cannot take
            else:
                self.epochs_run += 1
                return result
        return None if self.shard.rank else self.infeasible.result()

    def _epoch(self) -> dict[str, Any] | None:
        try:
            result = run_epoch(self.trial, self.staged, self.objective, self.settings.metric,
                               max_steps=self.settings.steps_per_epoch, shard=self.shard)
        except torch.cuda.OutOfMemoryError as exc:
            # Named for what it is: the trial's summary line then says why, instead of a CUDA stack.
            raise RuntimeError(
                f"GPU out of memory on {self.device} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}): "
                f"lower batch_size or hidden_size, or give each trial a larger GPU share (resources.gpu): {exc}"
            ) from exc
        if result is None:
            return None
        if C.LATENCY_MS not in self.footprint:  # once per trial, on the device it trains on (the weights do not matter)
            timed = latencies(self.trial.model, self.data.spec)
            self.footprint.update({C.LATENCY_MS: timed[1], C.LATENCY_MS_256: timed[256]})
            limit = self.settings.limits.get("max_latency_ms")
            if limit is not None and timed[1] > limit:
                # Checked after the first epoch: the infeasible result ends the trial (its epoch is not counted).
                self.infeasible = Infeasible(f"limits.max_latency_ms: a prediction takes {timed[1]:.3g} ms on {self.device}, "
                                             f"more than {limit:g}", "", self.footprint[C.NUM_PARAMS])
                return self.infeasible.result() | {C.LATENCY_MS: timed[1], C.LATENCY_MS_256: timed[256]}
        result.update(self.footprint)
        result[C.NODE] = self.node
        result[C.NODE_ID] = self.node_id
        result[C.GPU_IDS] = ",".join(self.gpu_ids)
        result[C.DEVICE] = f"{self.device}" + (f" ({os.environ.get('CUDA_VISIBLE_DEVICES')})" if self.device.type == "cuda" else "")
        result[C.WORLD_SIZE] = self.shard.size
        return result

    def state(self) -> dict[str, Any]:
        # The footprint travels with the weights: a trial resumed from a rung (a new `start`) keeps its latency
        # instead of timing its forward passes again after every resume.
        return {**self.trial.state_dict(), "footprint": dict(self.footprint)}

    def load(self, state: dict[str, Any]) -> None:
        self.trial.load_state_dict(state)
        self.footprint.update(state.get("footprint") or {})
