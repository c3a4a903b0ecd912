"""Large synthetic run directories in the real on-disk format, for timing and testing the readers at scale.

    python -m benchmarks.large_run OUT_DIR --shape wide     # 2,000 one-epoch trials
    python -m benchmarks.large_run OUT_DIR --shape deep     # 330 trials of up to 27 epochs (ASHA rungs 1/3/9/27)

What `orchestrator best`, `report` and `load_run(...).dataframe()` read is written the way a real search writes
it (modelled on a quickstart run of this tool, key for key): the resolved experiment.yaml (the bundled charlm
space), baselines.json, and per trial `<family>_<id>/` with params.json, params.pkl, result.json (every key the
trainable and Tune put in a row, the config included), progress.csv, its kept checkpoint (meta.json; state.pt a
placeholder of a few bytes, as no model is trained), and Tune's experiment_state-*.json with each trial's status,
best/metrics.json for the best trial. TensorBoard event files are left out (no reader of a run's results opens them).

The search is simulated, deterministically from `seed`: configurations drawn from the space by its own sampler,
learning curves that fall towards a value each family and learning rate make better or worse, the promoting
ASHA's rungs (a trial stopped while paused at a rung has no final `done` row; the saved state says TERMINATED),
a resumed trial's new session (its `iterations_since_restore` restarts), trials run on `max_concurrent` slots, a
few diverged, infeasible and failed trials. `Shape.counts` says how many trials end each way, for tests to check.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from search_spaces import SearchSpace
from trainables import constants as C
from trainables.trial import TrialConfig

SPACE_FILE = Path(__file__).resolve().parent.parent / "search_spaces" / "charlm.yaml"
T0 = 1_796_000_000.0  # the simulated search's start (a fixed wall time: the same seed gives the same files)
NODE_ID = "d7bbc53c61a473b1c1dc18d7648a9df6076c04fd178020833075ee9a"
# How far each family's curves get (bits per character at the end of a long run) and how fast they fall.
FAMILY_FLOOR = {"lstm": 1.95, "gru": 1.97, "rnn": 2.15, "transformer": 2.05, "mlp": 2.02}
# How a simulated trial ends: the statuses the readers must find (`orchestrator.reading.results`' words).
R_FINISHED, R_STOPPED, R_DIVERGED, R_INFEASIBLE, R_FAILED = "finished", "stopped early", "diverged", "infeasible", "failed"


@dataclass(frozen=True)
class Shape:
    """One simulated search: its trials, its scheduler's rungs (the last is max_epochs), trials at once."""

    name: str
    trials: int
    rungs: tuple[int, ...]
    reduction_factor: int
    max_concurrent: int
    diverged: int = 3  # trials that diverge in their first epoch (the penalty, `diverged: true`)
    infeasible: int = 2  # trials whose configuration could not run (one row, no epoch trained)
    failed: int = 2  # trials that raised (error.txt), after their first epoch

    @property
    def max_epochs(self) -> int:
        return self.rungs[-1]


SHAPES = {
    "wide": Shape("wide", trials=2000, rungs=(1,), reduction_factor=2, max_concurrent=8),
    "deep": Shape("deep", trials=330, rungs=(1, 3, 9, 27), reduction_factor=3, max_concurrent=4),
}


def experiment(shape: Shape, name: str, storage: Path) -> dict[str, Any]:
    """The resolved experiment.yaml of the simulated search, as the runner writes it: the config with every key
    (`ExperimentConfig`'s own dump, so a key added there is here too), the space inline, metric and mode."""
    from orchestrator.experiment.config import ExperimentConfig

    space = yaml.safe_load(SPACE_FILE.read_text())
    space.pop("points", None)
    scheduler = ({"kind": "fifo", "max_epochs": 1} if len(shape.rungs) == 1 else
                 {"kind": "asha", "max_epochs": shape.max_epochs, "grace_period": shape.rungs[0], "reduction_factor": shape.reduction_factor})
    config = ExperimentConfig(name=name, task={"kind": "charlm", "seq_len": 64}, search_space="charlm", scheduler=scheduler,
                              num_samples=shape.trials, max_concurrent=shape.max_concurrent, checkpoint={"keep": 1})
    resolved = config.model_dump(mode="json")
    resolved.update(storage=str(storage), search_space=space, metric=C.BPC, mode="min")
    return resolved


def _curve(rng: np.random.Generator, config: dict[str, Any], epochs: int) -> list[float]:
    """val_bpc per epoch: from ~3.2 towards the family's floor, slower and higher for a learning rate far from 3e-3."""
    family = config["arch"]["family"]
    off = abs(math.log10(config.get("lr", 3e-3) / 3e-3))
    floor = FAMILY_FLOOR[family] + 0.25 * off + rng.normal(0, 0.05)
    rate = max(0.08, 0.5 - 0.3 * off + rng.normal(0, 0.05))
    return [floor + (3.2 - floor) * math.exp(-rate * e) + rng.normal(0, 0.01) for e in range(1, epochs + 1)]


def _row(trial_id: str, config: dict, epoch: int, bpc: float, ended: float, epoch_s: float, total_s: float,
         since_restore_s: float, iters_since_restore: int, pid: int, done: bool) -> dict[str, Any]:
    """One result row as result.json holds it: the trainable's values, then Tune's bookkeeping (the config included)."""
    loss = bpc * math.log(2)
    model = config["arch"]["model"]
    width = model.get("hidden_size") or model.get("d_model", 64)
    return {
        C.TRAIN_LOSS: loss * 1.08, "lr": config.get("lr"), C.EPOCH_TIME: epoch_s * 0.96, "samples_per_s": 5800 / epoch_s,
        C.VAL_LOSS: loss, C.BPC: bpc, "val_perplexity": math.exp(loss), C.EPOCH: epoch, C.DIVERGED: False, "node": "192.0.2.2",
        "node_id": NODE_ID, "gpu_ids": "", "device": "cpu", "world_size": 1, "timestamp": ended, "done": done,
        "training_iteration": epoch, "trial_id": trial_id, "date": dt.datetime.fromtimestamp(ended, dt.timezone.utc).strftime("%Y-%m-%d_%H-%M-%S"),
        "time_this_iter_s": epoch_s, "time_total_s": total_s, "pid": pid, "hostname": "vm", "node_ip": "192.0.2.2",
        "config": config, "time_since_restore": since_restore_s, "iterations_since_restore": iters_since_restore,
        # The deployment figures every result carries (`trainables.footprint`): a parameter count and two latencies.
        "num_params": int(4 * width * width * model.get("num_layers", 1) + 100 * width), "latency_ms": 0.2 + width / 400,
        "latency_ms_256": 1.5 + width / 40,
    }


@dataclass
class _Trial:
    trial_id: str
    config: dict[str, Any]
    curve: list[float]
    stop_at: int  # the epoch it ends at (a rung, or max_epochs)
    end: str  # finished / stopped early / diverged / infeasible / failed
    rows: list[dict[str, Any]]

    @property
    def dirname(self) -> str:
        return f"{self.config['arch']['family']}_{self.trial_id}"


def _plan(shape: Shape, rng: np.random.Generator, space: SearchSpace) -> list[_Trial]:
    """Each trial's config, curve, and how far the promoting ASHA lets it go (the best 1/factor of each rung go on)."""
    trials = []
    ids: dict[str, None] = {}  # (a dict, not a set: its order is the draws', the same in every process)
    while len(ids) < shape.trials:
        ids[f"{int(rng.integers(16 ** 8)):08x}"] = None
    for trial_id in ids:
        config = space.sample(rng)
        trials.append(_Trial(trial_id, config, _curve(rng, config, shape.max_epochs), shape.max_epochs, R_FINISHED, []))
    # Rung by rung, the best 1/factor of those that reached it go on (what the promoting ASHA ends with).
    alive = list(trials)
    for rung, following in zip(shape.rungs, shape.rungs[1:]):
        alive.sort(key=lambda t: t.curve[rung - 1])
        keep = max(1, len(alive) // shape.reduction_factor)
        for t in alive[keep:]:
            t.stop_at, t.end = rung, R_STOPPED
        alive = alive[:keep]
    # A few trials that broke, taken from the ones stopped at the first rung (they were not promoted anyway).
    spare = [t for t in trials if t.end != R_FINISHED] or trials
    picked = rng.choice(len(spare), size=min(len(spare), shape.diverged + shape.infeasible + shape.failed), replace=False)
    for k, i in enumerate(picked):
        t = spare[int(i)]
        t.end = R_DIVERGED if k < shape.diverged else R_INFEASIBLE if k < shape.diverged + shape.infeasible else R_FAILED
        t.stop_at = 1
    return trials



def _simulate(shape: Shape, trials: list[_Trial], rng: np.random.Generator) -> None:
    """Runs each trial's sessions on `max_concurrent` slots, in the order the scheduler would start them, filling
    `rows`: a session per rung climbed (a promoted trial resumes from its checkpoint, so its counters restart)."""
    segments = []  # (order, trial index, first epoch, last epoch)
    for i, t in enumerate(trials):
        bounds = [0] + [r for r in shape.rungs if r <= t.stop_at]
        for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
            # A promotion happens once enough trials reached the rung: later in the queue the higher the rung.
            segments.append((i + k * shape.trials / len(shape.rungs) * 0.8, i, a + 1, b))
    segments.sort()
    free_at = [T0] * shape.max_concurrent
    epoch_s = {i: float(rng.uniform(1.0, 4.0)) for i in range(len(trials))}
    totals = {i: 0.0 for i in range(len(trials))}
    for _, i, first, last in segments:
        t = trials[i]
        slot = int(np.argmin(free_at))
        now = free_at[slot] + float(rng.uniform(0.02, 0.2))  # the switch to the next trial
        since = 0.0
        for epoch in range(first, last + 1):
            if t.end == R_INFEASIBLE:
                t.rows.append({C.INFEASIBLE: "RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x96 and 80x96)",
                               "timestamp": now + 0.3, "done": True, "training_iteration": 1, "trial_id": t.trial_id,
                               "time_this_iter_s": 0.3, "time_total_s": 0.3, "time_since_restore": 0.3, "iterations_since_restore": 1,
                               "config": t.config})
                now += 0.3
                break
            took = epoch_s[i] * float(rng.uniform(0.95, 1.05))
            now += took
            since += took
            totals[i] += took
            ends = epoch == t.stop_at
            row = _row(t.trial_id, t.config, epoch, t.curve[epoch - 1], now, took, totals[i], since, epoch - first + 1,
                       10_000 + slot, done=ends and t.end in (R_FINISHED, R_DIVERGED, R_FAILED))
            if t.end == R_DIVERGED:
                row.update({C.BPC: C.DIVERGED_PENALTY, C.VAL_LOSS: C.DIVERGED_PENALTY, C.DIVERGED: True})
            t.rows.append(row)
        free_at[slot] = now


def _state(shape: Shape, trials: list[_Trial], session: str) -> dict[str, Any]:
    """Tune's experiment_state json: per trial its own json (config, status, tag...) and its run-time json (last result,
    metric analysis, checkpoints), as strings, the way Tune stores them; about the size a real state has per trial."""
    data = []
    for t in trials:
        flat = TrialConfig.from_tune(t.config).flat()
        tag = ",".join(f"{k.removeprefix('model/')}={v:.4g}" if isinstance(v, float) else f"{k.removeprefix('model/')}={v}" for k, v in flat.items())
        own = {"stub": False, "trainable_name": "TorchTrainable", "trial_id": t.trial_id,
               "storage": {"_type": "CLOUDPICKLE_FALLBACK", "value": "80" * 640}, "config": t.config,
               "_Trial__unresolved_config": t.config, "evaluated_params": {f"arch/{k}" if k == "family" or k.startswith("model/") else k: v
                                                                         for k, v in flat.items()},
               "experiment_tag": tag, "stopping_criterion": {"training_iteration": shape.max_epochs}, "placement_group_factory": "80" * 180,
               "log_to_file": [None, None], "max_failures": 1, "status": "ERROR" if t.end == R_FAILED else "TERMINATED",
               "relative_logdir": t.dirname, "trial_name_creator": "80" * 630, "custom_trial_name": None, "custom_dirname": t.dirname}
        last = t.rows[-1] if t.rows else {}
        numeric = {k: v for k, v in last.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        runtime = {"start_time": T0, "num_failures": int(t.end == R_FAILED), "num_failures_after_restore": 0,
                   "error_filename": "error.txt" if t.end == R_FAILED else None, "pickled_error_filename": None, "last_result": last,
                   "last_result_time": last.get("timestamp"), "_n_steps": [5, 10],
                   "metric_analysis": {k: {"max": v, "min": v, "avg": v, "last": v, "last-5-avg": v, "last-10-avg": v} for k, v in numeric.items()},
                   "metric_n_steps": {k: {"5": [v] * 5, "10": [v] * 10} for k, v in numeric.items()},
                   "checkpoint_manager": {"_type": "CLOUDPICKLE_FALLBACK", "value": "80" * 1500}}
        data.append([json.dumps(own, indent=2), json.dumps(runtime, indent=2)])
    return {"trial_data": data, "runner_data": {"_session_str": session, "_reuse_actors": True, "_resumed": False},
            "stats": {"start_time": T0}}


@dataclass(frozen=True)
class LargeRun:
    """A run this module wrote: its directory, how many trials ended each way and the epochs each trial reported
    (trial id -> epochs), from the simulation itself (not read back through the readers, which tests check)."""

    path: Path
    counts: dict[str, int]
    epochs: dict[str, int]


def write_large_run(root: Path, shape: Shape | str = "wide", *, name: str | None = None, seed: int = 0) -> LargeRun:
    """Writes the simulated run `<root>/<name>` (default name: `large-<shape>`)."""
    shape = SHAPES[shape] if isinstance(shape, str) else shape
    rng = np.random.default_rng(seed)
    run = Path(root) / (name or f"large-{shape.name}")
    run.mkdir(parents=True)
    exp = experiment(shape, run.name, Path(root))
    (run / "experiment.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))
    (run / "baselines.json").write_text(json.dumps({"metric": C.BPC, "mode": "min", "baselines": {
        "unigram": {"val_loss": 3.2205, "val_bpc": 4.6462, "val_perplexity": 25.04, "test_loss": 3.2409, "test_bpc": 4.6756, "test_perplexity": 25.56},
        "bigram": {"val_loss": 2.4603, "val_bpc": 3.5494, "val_perplexity": 11.71, "test_loss": 2.3323, "test_bpc": 3.3648, "test_perplexity": 10.30},
    }}, indent=1))
    trials = _plan(shape, rng, SearchSpace.from_run(exp["search_space"]))
    _simulate(shape, trials, rng)
    for t in trials:
        _write_trial(run / t.dirname, t)
    session = dt.datetime.fromtimestamp(T0, dt.timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
    (run / f"experiment_state-{session}.json").write_text(json.dumps(_state(shape, trials, session), indent=2))
    scored = [t for t in trials if t.end in (R_FINISHED, R_STOPPED)]
    best = min(scored, key=lambda t: min(t.curve[: t.stop_at]))
    epoch = int(np.argmin(best.curve[: best.stop_at])) + 1
    value = best.curve[epoch - 1]
    (run / "best").mkdir()
    (run / "best" / "metrics.json").write_text(json.dumps({
        "trial_id": best.trial_id, "trial_dir": str(run / best.dirname), "checkpoint": str(run / best.dirname / f"checkpoint_{epoch - 1:06d}"),
        "epoch": epoch, "family": best.config["arch"]["family"], "hyperparameters": TrialConfig.from_tune(best.config).flat(),
        "metric": C.BPC, "mode": "min", "metrics": {"val_loss": value * math.log(2), C.BPC: value, "val_perplexity": 2 ** value,
                                                     "test_loss": value * 1.03 * math.log(2), "test_bpc": value * 1.03, "test_perplexity": 2 ** (value * 1.03)},
    }, indent=2))
    ends: dict[str, int] = {}
    for t in trials:
        ends[t.end] = ends.get(t.end, 0) + 1
    return LargeRun(run, ends, {t.trial_id: 0 if t.end == R_INFEASIBLE else t.stop_at for t in trials})


def _write_trial(tdir: Path, t: _Trial) -> None:
    tdir.mkdir()
    (tdir / "params.json").write_text(json.dumps(t.config, indent=2, sort_keys=True))
    (tdir / "params.pkl").write_bytes(pickle.dumps(t.config))
    (tdir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in t.rows))
    columns = list(dict.fromkeys(k for r in t.rows for k in r if k != "config"))
    with open(tdir / "progress.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "config"} for r in t.rows)
    if t.end == R_FAILED:
        (tdir / "error.txt").write_text("Failure # 1 (occurred at 2026-12-05_07-03-15)\nTraceback (most recent call last):\n"
                                        "  ...\nRuntimeError: CUDA out of memory (simulated)\n")
    if t.end == R_INFEASIBLE:
        (tdir / C.INFEASIBLE_FILE).write_text(t.rows[0][C.INFEASIBLE] + "\n")
    usable = [(r[C.BPC], r["training_iteration"]) for r in t.rows if C.BPC in r and not r.get(C.DIVERGED)]
    if usable:  # checkpoint.keep 1: the best epoch's
        value, epoch = min(usable)
        ckpt = tdir / f"checkpoint_{epoch - 1:06d}"
        ckpt.mkdir()
        (ckpt / C.META_FILE).write_text(json.dumps({"epoch": epoch, "metric": C.BPC, "value": value}))
        (ckpt / C.STATE_FILE).write_bytes(b"placeholder: no model was trained\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the storage root to write the run under")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="wide")
    parser.add_argument("--name", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written = write_large_run(args.out, args.shape, name=args.name, seed=args.seed)
    print(written.path, json.dumps(written.counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
