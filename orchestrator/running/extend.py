"""`orchestrator extend RUN_DIR --trials N`: more trials for a search that ended, in the same run directory.

Ray's `Tuner.restore` cannot raise `num_samples` (ray-project/ray#42221), so an extension is a new Tune
experiment in the run's own directory: a fresh searcher, taught every earlier trial's configuration and
final value before it suggests anything (`orchestrator.search.warm_start`), and seeded apart from the earlier
search so that it does not draw the same configurations again. The new trials' folders sit beside the
earlier ones (their ids carry the new experiment's own prefix), so the leaderboard, the report, TensorBoard
and `best/` take in every trial; the experiment-wide TensorBoard curves continue from where they were.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import yaml

from orchestrator.errors import UserError
from orchestrator.reading import results as R
from orchestrator.running.prepare import experiment_from_run, prepare
from orchestrator.search.schedulers import SCHEDULERS
from orchestrator.search.searchers import SEARCHERS
from trainables.rows import epoch_began, reported_value


def earlier_trials(run_dir: Path, metric: str) -> list:
    """Each earlier trial that reported the metric, as the searcher saw it end: its config, last value, epochs."""
    from orchestrator.search.warm_start import Evaluated

    found = []
    for trial in R.load_trials(run_dir):
        # What the searcher and the rungs were told: the reported values, a diverged epoch's penalty included.
        last = reported_value(trial.rows[-1], metric) if trial.rows else None
        if last is not None:
            curve = tuple((r["training_iteration"], v) for r in trial.rows if (v := reported_value(r, metric)) is not None)
            found.append(Evaluated(trial.config, last, trial.epochs, curve, infeasible=bool(trial.infeasible)))
    return found


def experiment_curves(trials: list, metric: str, mode: str) -> dict:
    """The state the experiment-wide TensorBoard curves had at the end of the earlier search (see
    `ExperimentTensorBoard.get_state`), so that the extension's points continue them rather than restart at 0."""
    starts = [began for t in trials if t.rows and (began := epoch_began(t.rows[0])) is not None]
    values = [v for t in trials if (v := t.best(metric, mode)) is not None]
    best = (min(values) if mode == "min" else max(values)) if values else None
    return {"origin": min(starts) if starts else time.time(), "best": best,
            "completed": sorted(t.trial_id for t in trials if not t.error), "failed": sorted(t.trial_id for t in trials if t.error)}


def _record_total(run_dir: Path, total: int) -> None:
    """experiment.yaml's num_samples becomes the run's new trial count (what readers show as planned)."""
    path = run_dir / R.EXPERIMENT_FILE
    resolved = yaml.safe_load(path.read_text())
    resolved["num_samples"] = total
    path.write_text(yaml.safe_dump(resolved, sort_keys=False))


def extend(run: str | Path, trials: int, *, address: str | None = None, out: TextIO | None = None) -> int:
    """Adds `trials` trials to a run; an interrupted run is resumed first, so that no trial is left unfinished."""
    out = out or sys.stdout
    from orchestrator.running import cluster, tuning
    from orchestrator.running.runner import _fit_and_finish, resume

    run_dir = Path(run).resolve()
    exp = experiment_from_run(run_dir)
    config = exp.config
    if trials < 1:
        raise UserError(f"--trials {trials}: must be at least 1")
    if not SEARCHERS[config.searcher].runs_given_points:
        raise UserError(f"{run_dir}: the {config.searcher} searcher has run its plan; extend a search of another searcher")
    if SCHEDULERS[config.scheduler.kind].own_population:
        raise UserError(f"{run_dir}: {config.scheduler.kind} evolved one population, which more trials would not join; "
                        "extend a search of another scheduler")
    if R.unfinished_trials(run_dir):
        print(f"{run_dir.name} was interrupted: finishing its trials first", file=out, flush=True)
        status = resume(run_dir, address=address, out=out)
        if status == 130:
            return status
    p = prepare(exp)
    # The points and the portfolio were evaluated by the earlier search; the extension teaches them with the other trials.
    p = replace(p, exp=replace(p.exp, config=config.model_copy(update={"points_to_evaluate": [], "warm_start": "none"})))
    history = earlier_trials(run_dir, p.metric)
    records = R.load_trials(run_dir)
    cluster.start_ray(address, imports=SEARCHERS[config.searcher].imports, py_modules=p.exp.space.model_files())
    setup = tuning.build_tuner(p, str(run_dir.parent), num_trials=trials, history=history, seed=config.seed + len(records),
                               curves=experiment_curves(records, p.metric, p.mode))
    _record_total(run_dir, len(records) + trials)
    print(f"Extending {run_dir.name} by {trials} trial(s); the searcher ({config.searcher}) has learned the "
          f"{len(history)} earlier one(s): {p.data.summary()}", file=out, flush=True)
    setup.num_trials = len(records) + trials
    return _fit_and_finish(setup, run_dir, p, out)
