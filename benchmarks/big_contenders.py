"""The large-corpus contenders, each given the same text file and the same wall-clock budget, and the referee that
scores every contender's best model on the same validation windows.

- the orchestrator: `orchestrator run --data FILE --budget B` through the command line's own entry point (its
  defaults: the whole bundled charlm space, the warm start, the budget's plan of short epochs);
- plain Ray Tune and Optuna, written the way their documentation teaches: the text read whole and encoded to an
  int64 array (`naive_data`), an epoch a full pass over the training windows (`epoch_steps` caps it: what a user
  who knows the data is large would add), the whole validation split evaluated every epoch, HyperOpt + ASHA with
  `time_budget_s` (Tune) or TPE + successive halving with `timeout` (Optuna), over the same bundled charlm space.

The model code and the training loop are the project's own everywhere (as in the harness), so what differs is
loading, planning and orchestration. Times count from each contender's `run` (interpreter start aside).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.workload import (
    METRIC,
    MODE,
    TrialFigures,
    best_so_far,
    figures,
    trial_seed,
)

STARTUP_TRIALS = 20  # the orchestrator's rule for a search of unbounded count (`startup_trials`): hyperopt's default
BEST_FILE = "best.pt"  # a plain contender's best model so far: {"config", "state_dict", "value", "at_s"}
PROGRESS_FILE = "progress.jsonl"  # one line per epoch that ended: what is left when a contender is stopped by force


@dataclass(frozen=True)
class BigWorkload:
    """The large-corpus race: one text file, one budget; the plain scripts' own search settings (the harness's
    cpu size: ASHA up to 4 epochs, grace 1, factor 2; two trials at once for Tune)."""

    corpus: str
    budget_s: float
    seq_len: int = 64  # the charlm task's default, which `--data` uses
    concurrent: int = 2
    max_epochs: int = 4
    grace_period: int = 1
    reduction_factor: int = 2
    epoch_steps: int | None = None  # None: a full pass per epoch, as the docs' loops do
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "BigWorkload":
        return cls(**json.loads(text))


def naive_data(bw: BigWorkload):
    """The corpus as a user's script loads it: the whole text read into memory, a vocabulary of its sorted characters, an int64
    id per character; split at the charlm task's window boundaries (so the referee's validation windows are unseen
    by every contender), no validation sample."""
    from trainables.tasks.base import ModelSpec, TaskData, Windows, split_sizes

    # newline="": the file's own characters. A plain read() turns "\r\n" and "\r" into "\n", and the ids would no
    # longer be those of the windows the referee scores (the charlm task reads the file's bytes).
    with open(bw.corpus, encoding="utf-8", newline="") as f:
        text = f.read()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    del text
    n_train, n_val, _ = split_sizes((len(ids) - 1) // bw.seq_len, 0.1, 0.1, source=bw.corpus, minimum=1)
    a, b = n_train * bw.seq_len, (n_train + n_val) * bw.seq_len
    splits = {"train": Windows(ids[: a + 1], bw.seq_len), "val": Windows(ids[a : b + 1], bw.seq_len), "test": Windows(ids[b:], bw.seq_len)}
    return TaskData(kind="charlm", spec=ModelSpec("tokens", len(vocab), len(vocab), seq_len=bw.seq_len, per_step=True),
                    splits=splits, objective={"name": "bpc", "nats_to_bits": 1.0 / math.log(2.0)}, metric=METRIC, mode=MODE)


def note(workdir: Path, began: float, trial: str, row: dict[str, Any]) -> None:
    """Appends one ended epoch to the progress file (one short line per write: lines from two workers never mix)."""
    line = json.dumps({"t": time.time() - began, "trial": trial, "value": row.get(METRIC), "step_s": row.get("epoch_time_s", 0.0)})
    with open(workdir / PROGRESS_FILE, "a") as f:
        f.write(line + "\n")


def run_orchestrator(bw: BigWorkload, workdir: Path, began: float) -> dict[str, Any]:
    import yaml

    from orchestrator.cli import main
    from orchestrator.reading import results as R

    rc = main(["run", "--data", bw.corpus, "--budget", f"{bw.budget_s:g}s", "--storage", str(workdir / "runs"), "--name", "bench"])
    wall = time.time() - began
    if rc != 0:
        raise RuntimeError(f"orchestrator run exited with {rc}")
    run_dir = workdir / "runs" / "bench"
    loaded = R.load_trials(run_dir)
    trials = [TrialFigures.from_rows(t.rows, finished=t.error is None) for t in loaded]
    curve = best_so_far([(r["timestamp"] - began, r.get(METRIC)) for t in loaded for r in t.rows])
    planned = yaml.safe_load((run_dir / "experiment.yaml").read_text())
    slots = int(planned.get("max_concurrent") or bw.concurrent)
    plan = {"steps_per_epoch": planned["task"].get("steps_per_epoch"), "max_epochs": planned["scheduler"]["max_epochs"],
            "concurrent": slots, "trial_ceiling": planned.get("num_samples")}
    return {**figures(trials, wall, slots, curve), "model": str(run_dir / "best" / "model.pt"), "plan": plan}


def train_plain(config: dict[str, Any], bw: BigWorkload, workdir: str, began: float) -> None:
    """One trial in its own worker, as the docs' `train_fn(config)`: it loads its own data and reports each epoch."""
    import os
    import tempfile

    import torch
    from ray import tune

    from trainables.objectives import Objective
    from trainables.training import DeviceData, TrialConfig, build_trial, run_epoch

    data = naive_data(bw)
    device = torch.device("cpu")
    staged, objective = DeviceData.stage(data, device), Objective(data.objective)
    state = build_trial(TrialConfig.from_tune(config), data.spec, device, seed=trial_seed(config, bw.seed), max_epochs=bw.max_epochs)
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state.load_state_dict(torch.load(os.path.join(folder, "checkpoint.pt"), weights_only=True))
    while state.epoch < bw.max_epochs:
        metrics = run_epoch(state, staged, objective, METRIC, max_steps=bw.epoch_steps)
        metrics["ended_at"] = time.time()
        note(Path(workdir), began, tune.get_context().get_trial_id(), metrics)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state.state_dict(), os.path.join(folder, "checkpoint.pt"))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def run_plain(bw: BigWorkload, workdir: Path, began: float) -> dict[str, Any]:
    import ray
    import torch
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.hyperopt import HyperOptSearch

    from search_spaces import load_space
    from search_spaces.hyperopt_space import to_hyperopt

    ray.init(address="local", num_cpus=bw.concurrent, num_gpus=0)
    trainable = tune.with_resources(tune.with_parameters(train_plain, bw=bw, workdir=str(workdir), began=began), {"cpu": 1})
    tune_config = tune.TuneConfig(
        metric=METRIC, mode=MODE, num_samples=-1, max_concurrent_trials=bw.concurrent,
        search_alg=HyperOptSearch(to_hyperopt(load_space("charlm")), metric=METRIC, mode=MODE, n_initial_points=STARTUP_TRIALS,
                                  random_state_seed=bw.seed),
        scheduler=ASHAScheduler(max_t=bw.max_epochs, grace_period=bw.grace_period, reduction_factor=bw.reduction_factor),
        time_budget_s=max(1.0, bw.budget_s - (time.time() - began)),  # the budget counts from this contender's start
    )
    grid = tune.Tuner(trainable, tune_config=tune_config, run_config=tune.RunConfig(name="plain", storage_path=str(workdir / "tune"))).fit()
    wall = time.time() - began
    trials, points, best = [], [], None
    for result in grid:
        frame = result.metrics_dataframe
        rows = frame.to_dict("records") if frame is not None and METRIC in frame else []
        trials.append(TrialFigures.from_rows(rows, finished=result.error is None))
        points += [(r["ended_at"] - began, r.get(METRIC)) for r in rows]
        if rows and result.best_checkpoints:
            checkpoint, metrics = min(result.best_checkpoints, key=lambda cm: cm[1].get(METRIC, math.inf))
            if best is None or metrics[METRIC] < best[0]:
                best = (metrics[METRIC], checkpoint, result.config, metrics["ended_at"] - began)
    if best is not None:
        with best[1].as_directory() as folder:
            state = torch.load(Path(folder) / "checkpoint.pt", weights_only=True)
        torch.save({"config": best[2], "state_dict": state["model"], "value": best[0], "at_s": best[3]}, workdir / BEST_FILE)
    return {**figures(trials, wall, bw.concurrent, best_so_far(points)), "model": str(workdir / BEST_FILE) if best else None}


def run_optuna(bw: BigWorkload, workdir: Path, began: float) -> dict[str, Any]:
    import optuna
    import torch

    from search_spaces import load_space
    from search_spaces.optuna_space import suggest
    from trainables.objectives import Objective
    from trainables.training import DeviceData, TrialConfig, build_trial, run_epoch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data, device = naive_data(bw), torch.device("cpu")
    staged, objective, space = DeviceData.stage(data, device), Objective(data.objective), load_space("charlm")
    deadline = began + bw.budget_s
    trials: list[TrialFigures] = []
    points: list[tuple[float, float]] = []
    best = {"value": math.inf}

    def objective_fn(trial) -> float:
        config = suggest(trial, space)
        state = build_trial(TrialConfig.from_tune(config), data.spec, device, seed=trial_seed(config, bw.seed), max_epochs=bw.max_epochs)
        rows: list[dict[str, Any]] = []
        try:
            for epoch in range(1, bw.max_epochs + 1):
                rows.append(run_epoch(state, staged, objective, METRIC, max_steps=bw.epoch_steps))
                value, now = rows[-1][METRIC], time.time()
                points.append((now - began, value))
                note(workdir, began, str(trial.number), rows[-1])
                if not math.isfinite(value):
                    raise optuna.TrialPruned()  # a diverged trial: nothing more to learn from it
                if now <= deadline and value < best["value"]:
                    best["value"] = value
                    torch.save({"config": config, "state_dict": state.model.state_dict(), "value": value, "at_s": now - began},
                               workdir / BEST_FILE)  # on disk at once: a contender stopped by force keeps it
                trial.report(value, epoch)
                if now > deadline:
                    # `timeout` only ends the study between trials; the budget ends this one at its epoch's end, as
                    # Tune's time_budget_s ends the running trials.
                    trial.study.stop()
                    return value
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return value
        finally:
            trials.append(TrialFigures.from_rows(rows))

    sampler = optuna.samplers.TPESampler(seed=bw.seed, n_startup_trials=STARTUP_TRIALS)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=bw.grace_period, reduction_factor=bw.reduction_factor, min_early_stopping_rate=0)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    study.optimize(objective_fn, timeout=max(1.0, deadline - time.time()))
    wall = time.time() - began
    return {**figures(trials, wall, 1, best_so_far(points)), "model": str(workdir / BEST_FILE) if math.isfinite(best["value"]) else None}


CONTENDERS = {"orchestrator": run_orchestrator, "plain": run_plain, "optuna": run_optuna}


def referee(bw: BigWorkload, model_file: str) -> dict[str, Any]:
    """A contender's best model scored on the whole validation split of the charlm task's own loading of the corpus
    (the same windows for every contender): {"val_bpc", "windows", "seconds"}."""
    import torch

    from trainables import load_model
    from trainables.models import build_model
    from trainables.objectives import Objective
    from trainables.tasks import TASKS
    from trainables.training import DeviceData, TrialConfig, split_metrics

    began = time.perf_counter()
    task = TASKS["charlm"]
    data = task.load(task.options(kind="charlm", data=bw.corpus, seq_len=bw.seq_len))
    payload = torch.load(model_file, weights_only=False)  # written by this benchmark (a Tune config may hold numpy scalars)
    if payload.get("format"):  # the orchestrator's exported model
        module = load_model(model_file).module
    else:
        trial = TrialConfig.from_tune(payload["config"])
        module = build_model(trial.family, trial.model, data.spec)
        module.load_state_dict(payload["state_dict"])
    staged = DeviceData.stage(data, torch.device("cpu"))
    result = split_metrics(module, staged, "val", Objective(data.objective))
    return {"val_bpc": result[METRIC], "windows": len(data.splits["val"]), "seconds": time.perf_counter() - began}
