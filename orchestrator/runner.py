"""The flow of a run: validate and load everything first, then tune, then export the best model.

Nothing is written to storage until the config, the search space, the data and the resources have all
been accepted, so a rejected experiment leaves no run directory behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from orchestrator import results as R
from orchestrator.config import Experiment, ExperimentConfig, check_space, parse_config
from orchestrator.errors import UserError
from orchestrator.strategies import SEARCHER_IMPORTS
from trainables import constants as C
from trainables.tasks import TASKS, DataError, TaskData


def resolve_data_path(config: ExperimentConfig, file: Path) -> ExperimentConfig:
    """`task.data` as an absolute path: relative to the experiment file's folder if it exists there, else to the CWD."""
    data = config.task.data
    if data is None or "://" in data or Path(data).is_absolute():
        return config
    beside = (file.parent / data).resolve()
    path = beside if beside.exists() else Path(data).resolve()
    return config.model_copy(update={"task": config.task.model_copy(update={"data": str(path)})})


def load_data(exp: Experiment) -> tuple[TaskData, str, str]:
    """The task's data, loaded and preprocessed once, with the metric and mode to optimize."""
    try:
        data = TASKS[exp.config.task.kind].load(exp.config.task)
    except DataError as exc:
        raise UserError(f"{exp.file}: {exc}") from None
    check_space_fits(exp, data)
    allowed = {data.metric, C.VAL_LOSS}
    metric, mode = exp.config.resolved_metric(data.metric)
    if metric not in allowed:
        raise UserError(
            f"{exp.file}: key 'metric': value '{metric}': task {data.kind} reports {', '.join(sorted(allowed))}"
        )
    return data, metric, mode


def check_space_fits(exp: Experiment, data: TaskData) -> None:
    """Builds a model for every choice option of the space on this task's data, so a family setting that
    cannot run the task (a bidirectional model predicting every next character) fails now, not in every trial."""
    import numpy as np

    from trainables.models import build_model
    from trainables.training import TrialConfig

    for config in exp.space.probes(np.random.default_rng(exp.config.seed)):
        trial = TrialConfig.from_tune(config)
        try:
            build_model(trial.family, trial.model, data.spec)
        except ValueError as exc:
            raise UserError(f"{exp.space.source}: families.{trial.family}: {exc} (task {data.kind})") from None


def run_dir_for(config: ExperimentConfig, explicit_name: bool) -> Path:
    """`<storage>/<name>`; a taken name gets a numeric suffix unless the user chose it with --name."""
    storage = Path(config.storage).expanduser().resolve()
    run_dir = storage / config.name
    if run_dir.exists():
        if explicit_name:
            raise UserError(f"--name {config.name}: {run_dir} already exists; resume it with `orchestrator resume {run_dir}` or pick another name")
        n = 2
        while (storage / f"{config.name}-{n}").exists():
            n += 1
        run_dir = storage / f"{config.name}-{n}"
    return run_dir


def remote_run_dir(config: ExperimentConfig, explicit_name: bool, store) -> Path:
    """For storage at a URI: a free run name there (same rule as `run_dir_for`), and the local mirror the driver keeps of it."""
    name = config.name
    if store.exists(name):
        if explicit_name:
            raise UserError(f"--name {name}: {store.run(name)} already exists; pick another name")
        n = 2
        while store.exists(f"{config.name}-{n}"):
            n += 1
        name = f"{config.name}-{n}"
    return Path(tempfile.mkdtemp(prefix="orchestrator-")) / name


def write_experiment(run_dir: Path, exp: Experiment, metric: str, mode: str, storage: str | None = None) -> None:
    """The resolved experiment (inline search space, absolute data path, metric and mode) that resume and export reread."""
    resolved = exp.config.model_dump(mode="json")
    resolved.update(name=run_dir.name, storage=storage or str(run_dir.parent), search_space=exp.space.raw, metric=metric, mode=mode)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / R.EXPERIMENT_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))


def experiment_from_run(run_dir: Path) -> Experiment:
    """The Experiment a run directory was started with."""
    file = R.check_run_dir(run_dir) / R.EXPERIMENT_FILE
    config = parse_config(R.read_experiment(run_dir), str(file))
    return Experiment(config, check_space(config, file), file)


def header(exp: Experiment, data: TaskData, run_dir: Path, num_trials: int, concurrency: int, out: TextIO) -> None:
    c = exp.config
    sched = f"{c.scheduler.kind} (max {c.scheduler.max_epochs} epochs" + (
        f", grace {c.scheduler.grace_period}, x{c.scheduler.reduction_factor:g})" if c.scheduler.kind == "asha" else ")"
    )
    print(f"Experiment {run_dir.name}: {data.summary()}", file=out)
    print(
        f"  {num_trials} trials over {', '.join(exp.space.families)} | searcher {c.searcher} | scheduler {sched} | "
        f"{concurrency} at once, {c.resources.cpu:g} CPU / {c.resources.gpu:g} GPU each",
        file=out,
    )
    print(f"  run directory: {run_dir}", file=out, flush=True)


def run(exp: Experiment, *, address: str | None = None, explicit_name: bool = False, out: TextIO | None = None) -> int:
    """Runs an experiment end to end; the exit status (0: a trial succeeded, 1: none did)."""
    out = out or sys.stdout  # looked up per call: a default bound at import would outlive a replaced stdout
    from orchestrator import tuning
    from orchestrator.storage import Storage

    exp = Experiment(resolve_data_path(exp.config, exp.file), exp.space, exp.file)
    data, metric, mode = load_data(exp)
    store = Storage.of(exp.config.storage)
    # For a URI, run_dir is the driver's local mirror of the run; Tune writes to the URI itself.
    run_dir = remote_run_dir(exp.config, explicit_name, store) if store.remote else run_dir_for(exp.config, explicit_name)
    exp = Experiment(exp.config.model_copy(update={"name": run_dir.name}), exp.space, exp.file)
    tuning.start_ray(address, imports=SEARCHER_IMPORTS[exp.config.searcher])
    tuning.check_capacity(exp.config, out=out)
    if not store.remote:
        tuning.check_storage_shared(store.root)
    write_experiment(run_dir, exp, metric, mode, storage=store.root)
    if store.remote:
        store.upload(run_dir / R.EXPERIMENT_FILE, run_dir.name, R.EXPERIMENT_FILE)
    marker = None if store.remote else str(run_dir / R.EXPERIMENT_FILE)
    setup = tuning.build_tuner(exp, data, store.root, metric, mode, storage_marker=marker)
    header(exp, data, run_dir, setup.num_trials, exp.config.max_concurrent or tuning.default_concurrency(exp.config), out)
    if store.remote:
        print(f"  stored at: {store.run(run_dir.name)} (the run directory above is this machine's copy: results, TensorBoard "
              "files and the best checkpoints' weights)", file=out, flush=True)
    return _fit_and_finish(setup, run_dir, exp, data, metric, mode, out, store=store if store.remote else None)


def resume(run: str | Path, *, address: str | None = None, out: TextIO | None = None) -> int:
    """Continues an interrupted run: finished trials are kept, unfinished ones resume from their checkpoints.

    `run` is a run directory, or the URI of a run stored in the cloud (`s3://bucket/runs/name`): Tune restores
    from the URI itself, and the driver keeps a fresh local mirror of the run, as `run` does.
    """
    out = out or sys.stdout
    from ray import tune

    from orchestrator import tuning
    from orchestrator.storage import is_uri

    store = None
    if is_uri(str(run)):
        store, name, run_dir = stored_run(str(run))
        location = store.run(name)
    else:
        run_dir = Path(run).resolve()
        location = str(run_dir)
    exp = experiment_from_run(run_dir)
    if not tune.Tuner.can_restore(location):
        raise UserError(f"{location}: no Tune experiment state to resume from (the run stopped before its first trial started)")
    data, metric, mode = load_data(exp)
    tuning.start_ray(address, imports=SEARCHER_IMPORTS[exp.config.searcher])
    setup = tuning.restore_tuner(exp, data, location, metric, mode)
    print(f"Resuming {run_dir.name}: {data.summary()}", file=out, flush=True)
    if store is not None:
        print(f"  stored at: {location} (this machine's copy: {run_dir})", file=out, flush=True)
    return _fit_and_finish(setup, run_dir, exp, data, metric, mode, out, store=store)


# Checkpoint weights the driver's copy of a cloud-stored run holds: the best by their recorded metric, and
# one more in case the best cannot be read. The others stay at the URI only (a run keeps `checkpoint.keep`
# per trial, which adds up to gigabytes for a large search).
MIRRORED_WEIGHTS = 2


def mirror_run(store, run_dir: Path, metric: str, mode: str) -> None:
    """Copies a cloud-stored run to the driver's `run_dir`: every file but the checkpoint weights, which
    only the export needs, and of those the MIRRORED_WEIGHTS best."""
    skipped = store.mirror(run_dir.name, run_dir, skip=lambda rel: rel.endswith("/" + R.STATE_FILE))
    ranked = []
    for rel in skipped:
        meta = run_dir / rel.rsplit("/", 1)[0] / R.META_FILE
        value = R.checkpoint_value(json.loads(meta.read_text()), metric) if meta.is_file() else None
        if value is not None:
            ranked.append((value, rel))
    ranked.sort(reverse=(mode == "max"))
    for _, rel in ranked[:MIRRORED_WEIGHTS]:
        store.download_file(run_dir.name, rel, run_dir / rel)


def stored_run(location: str):
    """(storage, run name, a new local directory for this machine's copy) of the run stored at URI `location`;
    the copy starts with the run's experiment.yaml, which says how to read the rest."""
    from orchestrator.storage import Storage

    root, _, name = location.rstrip("/").rpartition("/")
    store = Storage.of(root)
    if not name or not store.exists(name):
        raise UserError(f"{location}: no such run in that storage")
    run_dir = Path(tempfile.mkdtemp(prefix="orchestrator-")) / name
    store.download_file(name, R.EXPERIMENT_FILE, run_dir / R.EXPERIMENT_FILE)
    return store, name, run_dir


def readable_run(location: str) -> Path:
    """The run directory that `best`, `export`, `report` and `tensorboard` read: `location` itself, or for a
    run stored at a URI, a copy taken now (results, TensorBoard files, best/, the best checkpoints' weights)."""
    from orchestrator.storage import is_uri

    if not is_uri(location):
        return Path(location)
    store, _, run_dir = stored_run(location)
    exp = R.read_experiment(run_dir)
    mirror_run(store, run_dir, exp["metric"], exp["mode"])
    print(f"reading a copy of {location} taken now: {run_dir}", file=sys.stderr, flush=True)
    return run_dir


def _fit_and_finish(setup, run_dir: Path, exp: Experiment, data: TaskData, metric: str, mode: str, out: TextIO, store=None) -> int:
    began = time.monotonic()
    ctrl_c = _fit_noting_ctrl_c(setup.tuner)
    elapsed = time.monotonic() - began
    if store is not None:  # the run is at the URI: mirror what the export and the summary read
        mirror_run(store, run_dir, metric, mode)
    # Tune's own SIGINT handler ends fit() early after saving the experiment state: trials it stopped are
    # saved as unfinished, and a Ctrl-C between trials leaves trials the searcher has not proposed yet.
    interrupted = R.unfinished_trials(run_dir)
    trials = R.load_trials(run_dir)
    not_started = max(0, setup.num_trials - len(trials)) if ctrl_c else 0
    best = export_best(run_dir, exp, data, metric, mode, trials=trials) if any(t.best(metric, mode) is not None for t in trials) else None
    summarize(run_dir, exp, trials, best, data.metric, elapsed, out)
    if store is not None:
        from orchestrator.storage import fetch_command

        if best is not None:
            store.upload(run_dir / R.BEST_DIR, run_dir.name, R.BEST_DIR)
        print(f"Stored at:      {store.run(run_dir.name)}   (fetch: {fetch_command(store.run(run_dir.name), 'runs/' + run_dir.name)})", file=out, flush=True)
    if interrupted or not_started:
        where = store.run(run_dir.name) if store is not None else run_dir
        print(f"\nInterrupted with {len(interrupted)} trial(s) unfinished and {not_started} not started; the state is saved. "
              f"Continue with:\n  orchestrator resume {where}", file=out, flush=True)
        return 130
    return 0 if best is not None else 1


def _fit_noting_ctrl_c(tuner) -> bool:
    """Runs `tuner.fit()`; whether a Ctrl-C (SIGINT) ended it.

    For the run, Tune swaps in a SIGINT handler of its own, which on a SIGINT stops the run (saving its
    state) and puts the previous handler back; it leaves its own in place otherwise. So the previous
    handler back in place after fit() means a Ctrl-C, when Tune could install one (main thread, not
    disabled by TUNE_DISABLE_SIGINT_HANDLER).
    """
    before = signal.getsignal(signal.SIGINT)
    watched = (threading.current_thread() is threading.main_thread() and before is not None
               and os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") == "0")
    tuner.fit()
    if not watched:
        return False
    ctrl_c = signal.getsignal(signal.SIGINT) is before
    signal.signal(signal.SIGINT, before)
    return ctrl_c


@dataclass
class BestModel:
    trial: R.TrialRecord
    epoch: int
    metrics: dict[str, float]
    path: Path


def export_best(run_dir: Path, exp: Experiment, data: TaskData, metric: str, mode: str, out_path: Path | None = None,
                trials: list[R.TrialRecord] | None = None) -> BestModel:
    """Evaluates the best kept checkpoint of the run on validation and test, and writes `best/` (or `out_path`).

    `trials`: the run's trials when the caller has just read them."""
    import torch

    from trainables.export import atomic_write, save_model
    from trainables.objectives import Objective
    from trainables.models import build_model
    from trainables.training import DeviceData, TrialConfig, evaluate

    candidates = []
    for trial in trials if trials is not None else R.load_trials(run_dir):
        for meta, path in trial.checkpoints():
            value = R.checkpoint_value(meta, metric)
            if value is not None:
                candidates.append((value, trial, meta, path))
    if not candidates:
        raise UserError(f"{run_dir}: no checkpoint with a {metric} value to export yet")
    candidates.sort(key=lambda c: c[0], reverse=(mode == "max"))
    device = torch.device("cpu")
    for value, trial, meta, path in candidates:
        config = TrialConfig.from_tune(trial.config)
        # Only the weights: an optimizer built here would cost its first-use set-up in this process (torch
        # imports its compiler stack then, ~1.5 s) and be thrown away.
        model = build_model(config.family, config.model, data.spec).to(device)
        try:
            model.load_state_dict(torch.load(path / "state.pt", map_location=device, weights_only=True)["model"])
            break
        except (OSError, RuntimeError, EOFError, KeyError) as exc:
            # A checkpoint cut short by a crash while it was being copied: fall back to the next best.
            print(f"warning: skipping unreadable checkpoint {path}: {exc}", file=sys.stderr)
    else:
        raise UserError(f"{run_dir}: none of the {len(candidates)} checkpoints could be read")
    staged, objective = DeviceData.stage(data, device), Objective(data.objective)
    val_loss, val_metric = evaluate(model, staged, "val", objective)
    test_loss, test_metric = evaluate(model, staged, "test", objective)
    metrics = {C.VAL_LOSS: val_loss, data.metric: val_metric, "test_loss": test_loss, C.test_key(data.metric): test_metric}
    best_dir = run_dir / R.BEST_DIR
    model_path = out_path or best_dir / R.MODEL_FILE
    save_model(
        model_path, family=config.family, model_config=config.model, train_config=config.flat(), spec=data.spec,
        task=data.kind, objective=data.objective, metric=data.metric, preprocessing=data.preprocessing,
        metrics=metrics, state_dict=model.state_dict(),
    )
    if out_path is None:
        record = {"trial_id": trial.trial_id, "trial_dir": str(trial.path), "checkpoint": str(path), "epoch": meta["epoch"],
                  "family": config.family, "hyperparameters": config.flat(), "metric": metric, "mode": mode, "metrics": metrics}
        atomic_write(best_dir / R.METRICS_FILE, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
        resolved = R.read_experiment(run_dir)
        resolved["best_trial"] = {"trial_id": trial.trial_id, "config": trial.config}
        atomic_write(best_dir / R.EXPERIMENT_FILE, lambda tmp: Path(tmp).write_text(yaml.safe_dump(resolved, sort_keys=False)))
    return BestModel(trial, meta["epoch"], metrics, model_path)


def summarize(run_dir: Path, exp: Experiment, trials, best: BestModel | None, task_metric: str, elapsed: float, out: TextIO) -> None:
    """The end-of-run summary: outcomes, failures with reasons, the best trial and how to use it."""
    from orchestrator.progress import clock, describe

    max_epochs = exp.config.scheduler.max_epochs
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status(max_epochs)] = counts.get(t.status(max_epochs), 0) + 1
    print(f"\nDone in {clock(elapsed)}: {len(trials)} trials (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")", file=out)
    for t in trials:
        if t.status(max_epochs) in ("failed", "diverged"):
            reason = t.error or "loss became NaN/inf"
            print(f"  {t.status(max_epochs)}: {t.trial_id} [{describe(t.config)}]: {reason}", file=out)
    if best is None:
        print("No trial produced a usable model.", file=out)
        return
    test = C.test_key(task_metric)
    print(f"Best trial {best.trial.trial_id} [{describe(best.trial.config)}] at epoch {best.epoch}:", file=out)
    print(f"  {task_metric} {best.metrics[task_metric]:.4g} (validation), {test} {best.metrics[test]:.4g} (test)", file=out)
    print(f"Run directory:  {run_dir}", file=out)
    print(f"Leaderboard:    orchestrator best {run_dir}", file=out)
    print(f"TensorBoard:    orchestrator tensorboard {run_dir}   (or: tensorboard --logdir {run_dir})", file=out)
    print(f"Best model:     {best.path}", file=out)
    if exp.config.task.kind == "charlm":
        print(f"Sample text:    orchestrator sample {best.path} --prompt 'The '", file=out)
    print(f"In Python:      from trainables import load_model; m = load_model('{best.path}')", file=out)
