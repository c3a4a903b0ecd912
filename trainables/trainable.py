"""The one Ray Tune Trainable: it hosts trials of any family on any task, one epoch per `step`.

Data arrives once per actor through `tune.with_parameters` (Ray's object store) and is staged on the
device once; `reset_config` lets Tune reuse the actor for the next trial, so no trial pays for a new
process, a torch import, data parsing or a CUDA context.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from trainables import constants as C
from trainables.constants import DIVERGED_PENALTY, META_FILE, STATE_FILE  # defined there: readers of a run need no Ray
from trainables.objectives import Objective
from trainables.tasks.base import TaskData
from trainables.training import DeviceData, TrialConfig, build_trial, run_epoch


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


class TorchTrainable(tune.Trainable):
    def setup(self, config: dict[str, Any], data: TaskData, settings: TrialSettings):
        self.data, self.settings = data, settings
        # Each trial gets the cores Ray reserved for it; torch's default (all cores) would oversubscribe.
        torch.set_num_threads(max(1, int(settings.cpus)))
        self.device = assigned_device()
        self.node = ray.util.get_node_ip_address() if ray.is_initialized() else "local"
        self.node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()] if ray.is_initialized() else []
        check_storage_visible(settings.storage_marker, self.node)
        self.families = user_families(settings, self.node)
        self.staged = DeviceData.stage(data, self.device)
        self.objective = Objective(data.objective)
        self._start(config)

    def _start(self, config: dict[str, Any]) -> None:
        trial = TrialConfig.from_tune(config)
        self.trial = build_trial(
            trial, self.data.spec, self.device, seed=trial.seed(self.settings.seed), max_epochs=self.settings.max_epochs,
            families=self.families,
        )

    def step(self) -> dict[str, Any]:
        try:
            result = run_epoch(self.trial, self.staged, self.objective, self.settings.metric, max_steps=self.settings.steps_per_epoch)
        except torch.cuda.OutOfMemoryError as exc:
            # Named for what it is: the trial's summary line then says why, instead of a CUDA stack.
            raise RuntimeError(
                f"GPU out of memory on {self.device} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}): "
                f"lower batch_size or hidden_size, or give each trial a larger GPU share (resources.gpu): {exc}"
            ) from exc
        # Tune fills `timestamp` in whole seconds unless the trainable sets it; the exact end of the epoch (with
        # time_this_iter_s) tells when each trial held its CPU/GPU share, e.g. to check GPU packing.
        result["timestamp"] = time.time()
        result[C.NODE] = self.node
        result[C.NODE_ID] = self.node_id
        result[C.GPU_IDS] = ",".join(self.gpu_ids)
        result[C.DEVICE] = f"{self.device}" + (f" ({os.environ.get('CUDA_VISIBLE_DEVICES')})" if self.device.type == "cuda" else "")
        self.last_metric = result[self.settings.metric]
        if result[C.DIVERGED]:
            worst = DIVERGED_PENALTY if self.settings.mode == "min" else -DIVERGED_PENALTY
            for key in (C.TRAIN_LOSS, C.VAL_LOSS, self.settings.metric):
                result[key] = worst if key == self.settings.metric else DIVERGED_PENALTY
            result["done"] = True  # nothing more to learn from a trial whose weights are NaN
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        torch.save(self.trial.state_dict(), Path(checkpoint_dir) / STATE_FILE)
        meta = {"epoch": self.trial.epoch, "metric": self.settings.metric, "value": getattr(self, "last_metric", None)}
        (Path(checkpoint_dir) / META_FILE).write_text(json.dumps(meta))

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        state = torch.load(Path(checkpoint_dir) / STATE_FILE, map_location=self.device, weights_only=True)
        self.trial.load_state_dict(state)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        self._start(new_config)
        return True
