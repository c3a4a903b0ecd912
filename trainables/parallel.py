"""Data-parallel trials: a trial's `resources.workers` Ray actors, each training its shard of every batch with DDP.

The trial's own Tune actor holds no device; its placement group has one bundle per worker (`cpu`, `gpu`),
so Tune counts, reserves and frees the workers' resources with the trial, and the workers die with it.
Each worker hosts the same `TrialHost` a one-worker trial runs in-process, with its `Shard` of every batch;
rank 0 reports the results and gives the state that checkpoints save, and a restored state goes to every
worker. The group outlives a trial when Tune reuses the actor for the next one (`reset_config`): no new
processes, data staging or process group per trial.
"""

from __future__ import annotations

import datetime
import socket
from typing import Any

import ray
import torch

from trainables.host import TrialHost, TrialSettings, to_cpu
from trainables.tasks.base import TaskData
from trainables.training import Shard

# How long workers wait for each other to join the group, or in a collective; a worker that died is noticed
# sooner, by Ray (its actor's error), and fails the trial, which Tune then restores from its checkpoint.
GROUP_TIMEOUT = datetime.timedelta(minutes=10)


class DataParallelWorker:
    """One rank of a trial's group: a TrialHost with its shard, in a torch.distributed process group."""

    def __init__(self, data: TaskData, settings: TrialSettings, rank: int, size: int):
        self.host = TrialHost(data, settings, Shard(rank, size))

    def address(self) -> tuple[str, int]:
        """Where the group meets: this node's address and a port free on it (asked of rank 0)."""
        with socket.socket() as s:
            s.bind(("", 0))
            return ray.util.get_node_ip_address(), s.getsockname()[1]

    def join(self, address: str, port: int) -> None:
        import torch.distributed as dist

        backend = "nccl" if self.host.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{address}:{port}", rank=self.host.shard.rank,
                                world_size=self.host.shard.size, timeout=GROUP_TIMEOUT)

    def start(self, config: dict[str, Any]) -> None:
        self.host.start(config)

    def epoch(self) -> dict[str, Any] | None:
        return self.host.epoch()

    def state(self) -> dict[str, Any]:
        return to_cpu(self.host.state())

    def load(self, state: dict[str, Any]) -> None:
        self.host.load(state)

    def weights(self) -> dict[str, torch.Tensor]:
        """The model's weights on the CPU (what tests compare across ranks)."""
        return to_cpu(self.host.trial.model.state_dict())


def gather(refs: list) -> list:
    """The values of `refs`, raising as soon as any of them fails: a dead worker must fail the trial at once,
    not after its peers time out waiting for it in a collective."""
    pending, done = list(refs), {}
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done[ready[0]] = ray.get(ready[0])
    return [done[r] for r in refs]


class WorkerGroup:
    """A trial's data-parallel workers, placed in the bundles of the calling trial's placement group."""

    def __init__(self, data: TaskData, settings: TrialSettings, placement_group=None):
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = placement_group or ray.util.get_current_placement_group()
        actor = ray.remote(DataParallelWorker)
        data_ref = ray.put(data)  # once for the group, not once per worker
        self.workers = [
            actor.options(
                num_cpus=settings.cpus, num_gpus=settings.gpus,
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=rank) if pg else None,
            ).remote(data_ref, settings, rank, settings.workers)
            for rank in range(settings.workers)
        ]
        address, port = gather([self.workers[0].address.remote()])[0]
        gather([w.join.remote(address, port) for w in self.workers])

    def start(self, config: dict[str, Any]) -> None:
        gather([w.start.remote(config) for w in self.workers])

    def epoch(self) -> dict[str, Any]:
        return gather([w.epoch.remote() for w in self.workers])[0]

    def state(self) -> dict[str, Any]:
        return gather([self.workers[0].state.remote()])[0]

    def load(self, state: dict[str, Any]) -> None:
        ref = ray.put(state)  # one copy in the object store for every worker
        gather([w.load.remote(ref) for w in self.workers])

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)
        self.workers = []
