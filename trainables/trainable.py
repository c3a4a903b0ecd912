"""The one Ray Tune Trainable: it hosts trials of any family on any task, one epoch per `step`.

Data arrives once per actor through `tune.with_parameters` (Ray's object store) and is staged on the
device once; `reset_config` lets Tune reuse the actor for the next trial, so no trial pays for a new
process, a torch import, data parsing or a CUDA context.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from trainables import constants as C
from trainables.constants import (  # defined there: readers of a run need no Ray
    DIVERGED_PENALTY,
    INFEASIBLE_FILE,
    META_FILE,
    STATE_FILE,
)
from trainables.host import TrialHost, TrialSettings  # noqa: F401  (TrialSettings: the settings it takes)
from trainables.tasks.base import TaskData


class TorchTrainable(tune.Trainable):
    """The trial Tune runs: its host (in this process, or a group of data-parallel workers), one epoch per step."""

    def setup(self, config: dict[str, Any], data: TaskData, settings: TrialSettings):
        self.settings = settings
        if settings.workers > 1:
            from trainables.parallel import WorkerGroup

            self.host = WorkerGroup(data, settings)
        else:
            self.host = TrialHost(data, settings)
        self.host.start(config)

    def step(self) -> dict[str, Any]:
        result = self.host.epoch()
        # Tune fills `timestamp` in whole seconds unless the trainable sets it; the exact end of the epoch (with
        # time_this_iter_s) tells when each trial held its CPU/GPU share, e.g. to check GPU packing.
        result["timestamp"] = time.time()
        self.infeasible = result.get(C.INFEASIBLE)
        if self.infeasible:
            # Its configuration cannot run: the worst value teaches the searcher, and the trial ends here.
            result[self.settings.metric] = DIVERGED_PENALTY if self.settings.mode == "min" else -DIVERGED_PENALTY
            result["done"] = True
            found = getattr(self.host, "infeasible", None)  # a data-parallel group's workers keep theirs
            self._keep(INFEASIBLE_FILE, (found.traceback or found.reason) if found else self.infeasible)
        self.last_metric = result[self.settings.metric]
        if result[C.DIVERGED]:
            worst = DIVERGED_PENALTY if self.settings.mode == "min" else -DIVERGED_PENALTY
            for key in (C.TRAIN_LOSS, C.VAL_LOSS, self.settings.metric):
                result[key] = worst if key == self.settings.metric else DIVERGED_PENALTY
            result["done"] = True  # nothing more to learn from a trial whose weights are NaN
        return result

    def _keep(self, name: str, text: str) -> None:
        """Writes a file into the trial's folder in the run's storage (a directory or a URI), now: files in the
        trial's working directory reach storage only with its next checkpoint, and an ended trial takes none."""
        storage = getattr(self, "_storage", None)
        if storage is None:  # a Trainable used outside Tune
            (Path(self.logdir) / name).write_text(text)
            return
        storage.storage_filesystem.create_dir(storage.trial_fs_path, recursive=True)
        with storage.storage_filesystem.open_output_stream(f"{storage.trial_fs_path}/{name}") as stream:
            stream.write(text.encode())

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        if getattr(self, "infeasible", None):  # no model, nothing to keep (readers skip a folder without a state)
            return
        state = self.host.state()
        torch.save(state, Path(checkpoint_dir) / STATE_FILE)
        meta = {"epoch": state["epoch"], "metric": self.settings.metric, "value": getattr(self, "last_metric", None)}
        (Path(checkpoint_dir) / META_FILE).write_text(json.dumps(meta))

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        device = getattr(self.host, "device", torch.device("cpu"))  # a group's workers each move it to their own
        self.host.load(torch.load(Path(checkpoint_dir) / STATE_FILE, map_location=device, weights_only=True))

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        self.host.start(new_config)
        return True

    def cleanup(self) -> None:
        if hasattr(self.host, "shutdown"):
            self.host.shutdown()  # free the workers' devices now, not when Ray notices this actor is gone
