"""The one search every contender runs: space, task, seeds, trial count, epochs and ASHA settings.

Each contender (this orchestrator, a plain Ray Tune script, Optuna) takes a `Workload` and nothing else,
so the figures they report describe the same work. The search space is the LSTM branch of the bundled
`charlm` space; the data is the built-in charlm corpus; the model code and the training loop are the
project's own (`trainables.models.build_model`, `trainables.training.run_epoch`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainables.rows import usable_value

METRIC = "val_bpc"  # trainables.constants.BPC, the charlm task's metric (lower is better)
MODE = "min"
FAMILY = "lstm"


@dataclass(frozen=True)
class Workload:
    """A benchmark size: how much search, on how much data, with how many trials at once.

    work: "search" runs TPE + ASHA (the same searcher/scheduler settings everywhere); "fixed" runs the
    same pre-sampled configs to `max_epochs` with no early stopping, so every contender does identical
    work and wall times compare directly.
    """

    name: str
    num_trials: int
    max_epochs: int
    grace_period: int
    reduction_factor: int
    max_chars: int
    seq_len: int
    steps_per_epoch: int | None
    concurrent: int  # trials at once for the Ray contenders
    cpu_per_trial: float
    gpu_per_trial: float  # the orchestrator's share of a GPU per trial (fractions pack trials onto one GPU)
    plain_gpu_per_trial: float  # the docs-style script: one whole GPU per trial
    plain_concurrent: int
    seed: int = 0
    work: str = "search"

    def with_(self, **changes) -> "Workload":
        return dataclasses.replace(self, **changes)


SIZES: dict[str, Workload] = {
    # CI smoke: seconds of training; the figures mean nothing, the table's shape does.
    "tiny": Workload("tiny", num_trials=2, max_epochs=2, grace_period=1, reduction_factor=2, max_chars=20_000, seq_len=32,
                     steps_per_epoch=4, concurrent=2, cpu_per_trial=1, gpu_per_trial=0, plain_gpu_per_trial=0, plain_concurrent=2),
    # A few minutes on 2 CPU cores: 16 trials, up to 4 epochs of ~1-4 s each.
    "cpu": Workload("cpu", num_trials=16, max_epochs=4, grace_period=1, reduction_factor=2, max_chars=200_000, seq_len=64,
                    steps_per_epoch=None, concurrent=2, cpu_per_trial=1, gpu_per_trial=0, plain_gpu_per_trial=0, plain_concurrent=2),
    # One GPU: 16 trials; the orchestrator packs 4 trials onto the GPU, the docs-style script runs one per GPU.
    "gpu": Workload("gpu", num_trials=16, max_epochs=8, grace_period=1, reduction_factor=2, max_chars=400_000, seq_len=128,
                    steps_per_epoch=None, concurrent=4, cpu_per_trial=2, gpu_per_trial=0.25, plain_gpu_per_trial=1, plain_concurrent=1),
}


def space_mapping() -> dict[str, Any]:
    """The LSTM branch of the bundled charlm space (its training hyperparameters included), as YAML data."""
    import yaml

    from search_spaces import BUNDLED

    raw = yaml.safe_load(BUNDLED["charlm"].read_text(encoding="utf-8"))
    return {"families": {FAMILY: raw["families"][FAMILY]}, "train": raw["train"]}


def search_space():
    """The parsed `space_mapping()` (search_spaces.SearchSpace)."""
    from search_spaces import parse_space

    return parse_space(space_mapping(), "search_spaces/charlm.yaml (lstm branch)")


def task_options(w: Workload) -> dict[str, Any]:
    """The charlm task options, as an experiment file writes them."""
    return {"kind": "charlm", "max_chars": w.max_chars, "seq_len": w.seq_len, "steps_per_epoch": w.steps_per_epoch}


def load_data(w: Workload):
    """The charlm task's TaskData for this workload (what every contender trains on)."""
    from trainables.tasks import TASKS

    task = TASKS["charlm"]
    return task.load(task.options(**task_options(w)))


def device_for(gpu_share: float):
    """The torch device a contender trains on: a GPU when the workload gives trials one, else the CPU.

    Decided by the workload, not by what the machine has, so that a CPU size run on a GPU machine trains
    every contender on the CPU.
    """
    import torch

    return torch.device("cuda" if gpu_share > 0 else "cpu")


def startup_trials(w: Workload) -> int:
    """Random trials before TPE models the results: the orchestrator's rule, used by every contender."""
    from orchestrator.search.searchers import startup_trials as rule

    return rule(w.num_trials)


def fixed_configs(w: Workload) -> list[dict[str, Any]]:
    """The configs of a "fixed" workload: exactly what the orchestrator's seeded random searcher proposes."""
    space, rng = search_space(), np.random.default_rng(w.seed)
    return [space.sample(rng) for _ in range(w.num_trials)]


def trial_seed(config: dict[str, Any], base: int) -> int:
    """The model-initialization seed of a config: the orchestrator's own rule, so equal configs start equal."""
    from trainables.trial import TrialConfig

    return TrialConfig.from_tune(config).seed(base)


def experiment(w: Workload, storage: str) -> dict[str, Any]:
    """The orchestrator experiment file for this workload."""
    search = w.work == "search"
    return {
        "name": f"bench-{w.name}",
        "task": task_options(w),
        "search_space": space_mapping(),
        "searcher": "hyperopt" if search else "random",
        "scheduler": ({"kind": "asha", "max_epochs": w.max_epochs, "grace_period": w.grace_period, "reduction_factor": w.reduction_factor}
                      if search else {"kind": "fifo", "max_epochs": w.max_epochs}),
        "num_samples": w.num_trials,
        "max_concurrent": w.concurrent,
        "resources": {"cpu": w.cpu_per_trial, "gpu": w.gpu_per_trial},
        "checkpoint": {"keep": 1},
        "metric": METRIC,
        "mode": MODE,
        "seed": w.seed,
        "storage": storage,
        "max_failures": 0,
        "warm_start": "none",  # the same trials as the other contenders: they have no portfolio to run first
    }


@dataclass
class TrialFigures:
    """What a contender reports per trial: epochs run, Σ training-step seconds, best and last metric."""

    epochs: int
    step_s: float
    best: float | None
    last: float | None
    finished: bool = True

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], *, finished: bool = True) -> "TrialFigures":
        values = [v for r in rows if (v := usable_value(r, METRIC)) is not None]
        return cls(
            epochs=len(rows),
            step_s=float(sum(r.get("epoch_time_s", 0.0) for r in rows)),
            best=min(values) if values else None,
            last=values[-1] if values else None,
            finished=finished,
        )


def best_so_far(points: list[tuple[float, Any]]) -> list[list[float]]:
    """[[seconds since the contender started, best metric so far]] at every epoch's end, from (seconds, metric)
    pairs in any order; diverged or missing values count as no progress."""
    curve, best = [], math.inf
    for t, value in sorted(points, key=lambda p: p[0]):
        if (usable := usable_value({METRIC: value}, METRIC)) is not None:
            best = min(best, usable)
        if math.isfinite(best):
            curve.append([round(t, 3), best])
    return curve


def time_to_reach(curve: list[list[float]], target: float) -> float:
    """Seconds until a best-so-far curve first reached `target` (lower is better); inf if it never did."""
    return next((t for t, best in curve if best <= target), math.inf)


def figures(trials: list[TrialFigures], wall_s: float, slots: int, curve: list[list[float]] | None = None) -> dict[str, Any]:
    """The table's figures of one contender run; `curve`: its best-so-far against wall time (`best_so_far`)."""
    finished = [t for t in trials if t.finished and t.epochs > 0]
    step = sum(t.step_s for t in trials)
    epochs = sum(t.epochs for t in trials)
    bests = [t.best for t in trials if t.best is not None]
    return {
        "wall_s": wall_s,
        "trials_finished": len(finished),
        "epochs": epochs,
        "step_s": step,
        "busy": step / (wall_s * slots) if wall_s > 0 else 0.0,
        "idle_s": wall_s - step / slots,
        "trials_per_hour": len(finished) * 3600.0 / wall_s if wall_s > 0 else 0.0,
        "wall_per_epoch_s": wall_s / epochs if epochs else float("nan"),
        "best": min(bests) if bests else None,
        "slots": slots,
        "curve": curve or [],
    }


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")
