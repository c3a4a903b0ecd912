"""The flow of a run: validate and load everything first, then tune, then export the best model.

Nothing is written to storage until the config, the search space, the data and the resources have all
been accepted, so a rejected experiment leaves no run directory behind. The pieces live beside it:
`prepare` (data and checks), `tuning` (every Ray object), `exporting` (the best model), `console` (what
is printed), `storage` (where the run lives) and `results` (reading it back).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Self, TextIO

import yaml

from orchestrator.errors import UserError
from orchestrator.experiment.load import Experiment
from orchestrator.reading import results as R
from orchestrator.reading.storage import (
    Storage,
    fetch_command,
    is_uri,
    mirror_run,
    stored_run,
)
from orchestrator.running.prepare import Prepared, experiment_from_run, prepare
from orchestrator.search.searchers import SEARCHERS
from orchestrator.watch import console
from trainables.tasks import TASKS


def write_experiment(run_dir: Path, p: Prepared, storage: str) -> None:
    """The resolved experiment (inline search space, absolute data path, metric and mode) that resume and export reread."""
    resolved = p.exp.config.model_dump(mode="json")
    resolved.update(name=run_dir.name, storage=storage, search_space=p.exp.space.raw, metric=p.metric, mode=p.mode)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / R.EXPERIMENT_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
    baselines = {"metric": p.data.metric, "mode": p.data.mode, "baselines": p.baselines}
    (run_dir / R.BASELINES_FILE).write_text(json.dumps(baselines, indent=1))


def run(exp: Experiment, *, address: str | None = None, explicit_name: bool = False, out: TextIO | None = None,
        started: float | None = None, stop: Any = None, startup_fraction: float | None = None) -> int:
    """Runs an experiment end to end; the exit status (0: a trial succeeded, 1: none did, 130: interrupted).

    `started`: time.monotonic() when the command began, from which a `budget` counts (default: now); `stop` and
    `startup_fraction`: the search options of `orchestrator.run` (`Prepared`)."""
    out = out or sys.stdout  # looked up per call: a default bound at import would outlive a replaced stdout
    started = time.monotonic() if started is None else started
    from orchestrator.running import cluster, tuning
    from trainables.baselines import compute_baselines

    p = prepare(exp)
    p = replace(p, stop=stop, startup_fraction=startup_fraction, baselines=compute_baselines(p.data))
    store = Storage.of(p.exp.config.storage)
    run_dir = store.new_run(p.exp.config.name, explicit_name)
    p = replace(p, exp=replace(p.exp, config=p.exp.config.model_copy(update={"name": run_dir.name})))
    cluster.start_ray(address, imports=SEARCHERS[p.exp.config.searcher].imports, py_modules=p.exp.space.model_files())
    cluster.check_capacity(p.exp.config, out=out)
    if not store.remote:
        cluster.check_storage_shared(store.root)
    if p.exp.config.budget is not None:
        p = _sized_to_budget(p, started)
    write_experiment(run_dir, p, store.root)
    if store.remote:
        for name in (R.EXPERIMENT_FILE, R.BASELINES_FILE):
            store.upload(run_dir / name, run_dir.name, name)
    marker = None if store.remote else str(run_dir / R.EXPERIMENT_FILE)
    setup = tuning.build_tuner(p, store.root, storage_marker=marker)
    concurrency = p.exp.config.max_concurrent or cluster.default_concurrency(p.exp.config)
    console.header(p.exp, p.data.summary(), run_dir, setup.num_trials, concurrency, out, warnings=p.warnings)
    if p.plan is not None:  # the trial count above is a ceiling: the budget ends the search
        print(f"  {p.plan.describe()}; the {setup.num_trials} trials above are a ceiling: trials go on until the budget "
              "ends the search", file=out, flush=True)
        if p.plan.sample_note():
            print(f"  {p.plan.sample_note()}", file=out, flush=True)
    if store.remote:
        print(f"  stored at: {store.run(run_dir.name)} (the run directory above is this machine's copy: results, TensorBoard "
              "files and the best checkpoints' weights)", file=out, flush=True)
    return _fit_and_finish(setup, run_dir, p, out, store=store if store.remote else None)


def _sized_to_budget(p: Prepared, started: float) -> Prepared:
    """The search planned to end within the experiment's budget (a probe of each family's epoch cost, counted in it)."""
    from orchestrator.running import cluster
    from orchestrator.search import budget

    c = p.exp.config
    slots = c.max_concurrent or cluster.default_concurrency(c.model_copy(update={"num_samples": budget.MAX_TRIALS}))
    try:
        return budget.apply(p, started, slots)[0]
    except budget.BudgetTooSmall as exc:
        raise UserError(f"{p.exp.where}: key 'budget': value {c.budget!r}: {exc}") from None


def resume(run: str | Path, *, address: str | None = None, out: TextIO | None = None) -> int:
    """Continues an interrupted run: finished trials are kept, unfinished ones resume from their checkpoints.

    `run` is a run directory, or the URI of a run stored in the cloud (`s3://bucket/runs/name`): Tune restores
    from the URI itself, and the driver keeps a fresh local mirror of the run, as `run` does.
    """
    out = out or sys.stdout
    from ray import tune

    from orchestrator.running import cluster, tuning

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
    p = prepare(exp)
    cluster.start_ray(address, imports=SEARCHERS[p.exp.config.searcher].imports, py_modules=p.exp.space.model_files())
    setup = tuning.restore_tuner(p, location)
    print(f"Resuming {run_dir.name}: {p.data.summary()}", file=out, flush=True)
    if store is not None:
        print(f"  stored at: {location} (this machine's copy: {run_dir})", file=out, flush=True)
    return _fit_and_finish(setup, run_dir, p, out, store=store)


def _fit_and_finish(setup, run_dir: Path, p: Prepared, out: TextIO, store: Storage | None = None) -> int:
    """Runs the search, exports the best model, prints the summary; the exit status, which the search decides:
    a Ctrl-C after it ended does not change it (`_SearchEnded`)."""
    began = time.monotonic()
    ctrl_c = _fit_noting_ctrl_c(setup.tuner)
    elapsed = time.monotonic() - began
    with _SearchEnded() as ended:
        try:
            return _finish(setup, run_dir, p, out, store, ctrl_c, elapsed, ended, began=began)
        except _SkipRest:
            where = store.run(run_dir.name) if store is not None else run_dir
            resume = f"; continue with: orchestrator resume {where}" if ended.status == 130 else ""
            print(f"\nSkipped the rest of the export and summary (Ctrl-C again); the run is in {where}{resume}",
                  file=out, flush=True)
            return ended.status


def _finish(setup, run_dir: Path, p: Prepared, out: TextIO, store: Storage | None, ctrl_c: bool, elapsed: float,
            ended: _SearchEnded, began: float) -> int:
    """What follows the search (which began at `began`, time.monotonic(), and took `elapsed` s): the exit status it
    decided (noted in `ended` first), the export, the summary."""
    from orchestrator.running.best_model import export_best, export_ensemble

    if store is not None:  # the run is at the URI: mirror what the export and the summary read
        mirror_run(store, run_dir, p.metric, p.mode)
    # Tune's own SIGINT handler ends fit() early after saving the experiment state: trials it stopped are
    # saved as unfinished, and a Ctrl-C between trials leaves trials the searcher has not proposed yet. A fit()
    # that ended on its own has nothing to resume, whatever the saved state says: BOHB's HyperBand leaves the
    # trials it paused at a rung and never resumed saved as PAUSED (they were stopped early).
    interrupted = R.unfinished_trials(run_dir) if ctrl_c else []
    trials = R.load_trials(run_dir)
    not_started = max(0, setup.num_trials - len(trials)) if ctrl_c else 0
    exportable = any(t.best(p.metric, p.mode) is not None for t in trials)
    ended.status = 130 if interrupted or not_started else 0 if exportable else 1
    # A budgeted run's export fits its budget: a large split is evaluated on its seeded sample (and says so).
    best = export_best(run_dir, p.data, p.metric, p.mode, trials=trials, sampled=p.plan is not None) if exportable else None
    max_epochs = p.exp.config.scheduler.max_epochs
    own_class = best is not None and best.trial.family in p.exp.space.models
    console.summarize(run_dir, TASKS[p.data.kind], trials, best, p.data.metric, max_epochs, elapsed, out, own_class=own_class)
    if best is not None and p.exp.config.ensemble:
        made = export_ensemble(run_dir, p.data, p.metric, p.mode, p.exp.config.ensemble, trials=trials)
        for line in console.ensemble_lines(made.record, p.metric):
            print(line, file=out)
        print(f"{'Ensemble:':<15} {made.path}   (load_model reads it as one model)", file=out, flush=True)
    if p.plan is not None:
        spent = {"start-up": began - p.plan.started, "searching": elapsed, "export": time.monotonic() - began - elapsed}
        console.budget_line(p.plan, spent, len(trials), out, ended_early=_ended_early(p, setup, trials, began + elapsed, ctrl_c))
    if store is not None:
        if best is not None:
            store.upload(run_dir / R.BEST_DIR, run_dir.name, R.BEST_DIR)
        print(f"Stored at:      {store.run(run_dir.name)}   (fetch: {fetch_command(store.run(run_dir.name), 'runs/' + run_dir.name)})", file=out, flush=True)
    if interrupted or not_started:
        where = store.run(run_dir.name) if store is not None else run_dir
        print(f"\nInterrupted with {len(interrupted)} trial(s) unfinished and {not_started} not started; the state is saved. "
              f"Continue with:\n  orchestrator resume {where}", file=out, flush=True)
    return ended.status


def _ended_early(p: Prepared, setup, trials: list, search_ended: float, ctrl_c: bool) -> str | None:
    """Why a budgeted search ended before the budget's last tenth (None when it did not): the searcher ran out of
    trials to start (a finite space, each of its configurations run once) before the time budget ended it."""
    used = search_ended - p.plan.started
    if ctrl_c or used >= 0.9 * (p.plan.budget_s - p.plan.export_s):
        return None
    c = p.exp.config
    if setup.num_trials < c.num_samples:
        return (f"the space has {setup.num_trials} distinct configurations and each ran once, at "
                f"{max(t.epochs for t in trials) if trials else 0} epoch(s) at most (max_epochs {c.scheduler.max_epochs})")
    return f"all {setup.num_trials} trials it was given ran, after {used / p.plan.budget_s:.0%} of the budget"


class _SkipRest(BaseException):
    """A second Ctrl-C after the search ended: what is left of the export and summary is skipped. A BaseException,
    as KeyboardInterrupt is, so that no `except Exception` on the way swallows it."""


class _SearchEnded:
    """Ctrl-C once Tune's fit() has returned, while the export and the summary run: the search has decided the
    exit status, and a Ctrl-C does not change it. The first is noted in one line and the export and summary go
    on (a few seconds); another, once the status is known (`status`), skips what is left of them. The handler
    is in place only inside the `with` (in the main thread, where Python runs signal handlers)."""

    NOTE = "\nCtrl-C after the search ended: finishing the export and summary (Ctrl-C again skips them)\n"

    def __init__(self):
        self.status: int | None = None
        self.presses = 0
        self._previous = None

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._ctrl_c)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _ctrl_c(self, signum, frame) -> None:
        self.presses += 1
        if self.presses == 1:
            os.write(2, self.NOTE.encode())  # not through sys.stderr: the handler may interrupt a write to it
        elif self.status is not None:
            raise _SkipRest


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
