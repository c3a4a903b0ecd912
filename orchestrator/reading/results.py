"""Reading a run directory: the experiment, its trials, their status, the leaderboard and the best model.

The one reading layer that `best`, `report`, `export`, the console summary and the benchmarks share. It
imports neither torch nor Ray Tune (`orchestrator best` answers in a fraction of a second), and works on a
finished run, an interrupted one and one still running (it reads the files Tune writes per trial:
params.json, result.json, checkpoint_*/).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import UserError
from orchestrator.reading.tune_state import saved_statuses, unfinished_trials  # noqa: F401  (part of this layer's face)
from trainables import constants as C
from trainables.constants import META_FILE, STATE_FILE
from trainables.rows import epoch_began, usable_value
from trainables.trial import TrialConfig, family_of

EXPERIMENT_FILE = "experiment.yaml"  # the resolved experiment config, written when the run starts
BASELINES_FILE = "baselines.json"  # the task's baselines on validation and test, computed once before the search
BEST_DIR = "best"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
ENSEMBLE_MODEL_FILE = "ensemble.pt"  # in best/: the ensemble built at the end of a run (`ensemble:`)
ENSEMBLE_FILE = "ensemble.json"  # in best/: the latest ensemble's members, weights and metrics (export --ensemble too)
# A trial's status, decided in one place (`ended_as`, `TrialRecord.status`) for the progress view, the
# summary, the leaderboard and the report.
UNFINISHED = "unfinished"  # running, or interrupted and not resumed yet
FINISHED = "finished"
STOPPED_EARLY = "stopped early"
FAILED = "failed"
DIVERGED = "diverged"
INFEASIBLE = "infeasible"  # its configuration could not be built or run (no epoch trained)


def ended_as(last: dict[str, Any], max_epochs: int) -> str:
    """How a trial that ended went, from its final result: infeasible, diverged, finished (all epochs) or stopped early."""
    if last.get(C.INFEASIBLE):
        return INFEASIBLE
    if last.get(C.DIVERGED):
        return DIVERGED
    return FINISHED if last.get("training_iteration", 0) >= max_epochs else STOPPED_EARLY


@dataclass
class TrialRecord:
    """One trial as found on disk."""

    trial_id: str
    path: Path
    config: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    saved_status: str | None = None  # Tune's status for it in the run's saved experiment state, when there is one

    @property
    def family(self) -> str:
        return family_of(self.config)

    @property
    def epochs(self) -> int:
        """Epochs trained (an infeasible trial's one result trained none)."""
        return max((r.get("training_iteration", 0) for r in self.rows if not r.get(C.INFEASIBLE)), default=0)

    @property
    def infeasible(self) -> str | None:
        """Why the trial's configuration could not run (the exception, with the user's file and line), or None."""
        return next((r[C.INFEASIBLE] for r in self.rows if r.get(C.INFEASIBLE)), None)

    @property
    def diverged(self) -> bool:
        return any(r.get(C.DIVERGED) for r in self.rows)

    def _footprint(self, key: str) -> float | None:
        """A deployment figure the trial reported (`trainables.footprint`), or None (never built, or an older run)."""
        return next((r[key] for r in reversed(self.rows) if r.get(key) is not None), None)

    num_params = property(lambda self: None if (n := self._footprint(C.NUM_PARAMS)) is None else int(n), doc="parameters")
    latency_ms = property(lambda self: self._footprint(C.LATENCY_MS), doc="ms of a prediction of one input (LATENCY_METHOD)")
    latency_ms_256 = property(lambda self: self._footprint(C.LATENCY_MS_256), doc="ms of a forward pass of 256 inputs")

    def best_checkpoint(self, metric: str, mode: str) -> tuple[dict, Path] | None:
        """(meta, directory) of the trial's kept checkpoint with the best `metric` value; None when it keeps none."""
        scored = [(value, meta, path) for meta, path in self.checkpoints() if (value := checkpoint_value(meta, metric)) is not None]
        return (min if mode == "min" else max)(scored, key=lambda item: item[0])[1:] if scored else None

    def values(self, metric: str) -> list[float]:
        return [v for r in self.rows if (v := usable_value(r, metric)) is not None]

    def best(self, metric: str, mode: str) -> float | None:
        values = self.values(metric)
        return (min(values) if mode == "min" else max(values)) if values else None

    def status(self, max_epochs: int) -> str:
        """failed / diverged / unfinished (running, or interrupted and not resumed yet) / finished / stopped early."""
        if self.error:
            return FAILED
        if self.infeasible:
            return INFEASIBLE
        if self.diverged:
            return DIVERGED
        if (not self.rows or not self.rows[-1].get("done")) and self.saved_status == "TERMINATED":
            # Tune ended it without a final result (or before its first): the experiment's time budget stopped it.
            return STOPPED_EARLY
        if not self.rows or not self.rows[-1].get("done"):
            return UNFINISHED  # Tune marks a trial's final result `done`, whatever ended it
        return ended_as({"training_iteration": self.epochs}, max_epochs)

    def hparams(self) -> dict[str, Any]:
        return TrialConfig.from_tune(self.config).flat()

    def checkpoints(self) -> list[tuple[dict, Path]]:
        """(meta, directory) of each checkpoint this trial still keeps."""
        found = []
        for meta_path in sorted(self.path.glob(f"checkpoint_*/{META_FILE}")):
            if (meta_path.parent / STATE_FILE).is_file():
                found.append((json.loads(meta_path.read_text()), meta_path.parent))
        return found


def checkpoint_value(meta: dict[str, Any], metric: str) -> float | None:
    """The `metric` value a checkpoint's meta.json records; None when it records another metric, NaN, or a
    diverged trial's penalty (such weights are no model to export)."""
    return usable_value(meta, "value") if meta.get("metric") == metric else None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """A trial's epochs as its final attempt ran them.

    A trial interrupted after reporting an epoch but before that epoch's checkpoint was saved resumes from
    the checkpoint before it and reports the epoch again; Tune appends, so result.json then holds e.g.
    iterations 1, 2, 2, 3. The rows a continuation replaced are dropped: curves, leaderboards and the export
    see each epoch once, with the values of the weights that went on training.
    """
    rows: list[dict[str, Any]] = []
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut short by a crash; everything before it stands
            step = row.get("training_iteration")
            if isinstance(step, int) and rows and isinstance(rows[-1].get("training_iteration"), int) and step <= rows[-1]["training_iteration"]:
                rows = [r for r in rows if not (isinstance(r.get("training_iteration"), int) and r["training_iteration"] >= step)]
            rows.append(row)
    return rows


def check_run_dir(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / EXPERIMENT_FILE).is_file():
        raise UserError(f"{run_dir}: not a run directory of this tool (no {EXPERIMENT_FILE}); pass <storage>/<name>")
    return run_dir


def load_trials(run_dir: Path) -> list[TrialRecord]:
    """Every trial directory under a run, in the order the trials started training."""
    found = []
    statuses = saved_statuses(run_dir, every_session=True)
    for params in Path(run_dir).glob("*/params.json"):
        tdir = params.parent
        try:
            config = json.loads(params.read_text())
        except json.JSONDecodeError:
            continue
        error_file = tdir / "error.txt"
        error = error_file.read_text().strip().splitlines()[-1] if error_file.is_file() and error_file.read_text().strip() else None
        trial_id = tdir.name.split("_", 1)[-1]
        trial = TrialRecord(trial_id, tdir, config, _read_rows(tdir / "result.json"), error, statuses.get(trial_id))
        found.append((_started(trial, params), trial))
    return [trial for _, trial in sorted(found, key=lambda pair: pair[0])]


def _started(trial: TrialRecord, params: Path) -> tuple[int, float]:
    """When a trial's first epoch began (the exact end time the trainable reports, less the epoch's duration);
    trials with no epoch yet after all others, by their params.json. Not params.json alone: Tune writes the
    trial folders in a staging directory and copies them to storage, so their times tell copies apart, not starts."""
    began = epoch_began(trial.rows[0]) if trial.rows else None
    return (0, began) if began is not None else (1, params.stat().st_mtime)


def read_experiment(run_dir: Path) -> dict[str, Any]:
    """The resolved experiment.yaml a run was started with, as a plain mapping."""
    return yaml.safe_load((Path(run_dir) / EXPERIMENT_FILE).read_text())


@dataclass(frozen=True)
class Run:
    """What a run directory says about itself: its resolved experiment (as written at start) and where it is."""

    run_dir: Path
    experiment: dict[str, Any]

    @property
    def metric(self) -> str:
        return self.experiment["metric"]

    @property
    def mode(self) -> str:
        return self.experiment["mode"]

    @property
    def max_epochs(self) -> int:
        return self.experiment["scheduler"]["max_epochs"]

    @property
    def scheduler(self) -> dict[str, Any]:
        return self.experiment["scheduler"]

    def space(self):
        """The run's search space (validated when the run started, so read without importing torch)."""
        from search_spaces import SearchSpace

        return SearchSpace.from_run(self.experiment["search_space"])

    def planned_trials(self) -> int:
        """How many trials the run's searcher plans (num_samples, or the grid's size times num_samples)."""
        from orchestrator.search.searchers import SEARCHERS

        e = self.experiment
        return SEARCHERS[e["searcher"]].planned(self.space(), e["num_samples"], e.get("seed", 0))

    def trials(self) -> list[TrialRecord]:
        return load_trials(self.run_dir)

    def best_model(self) -> dict[str, Any] | None:
        """best/metrics.json: the exported best trial, its epoch and its validation and test metrics; None before the export."""
        path = self.run_dir / BEST_DIR / METRICS_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def ensemble(self) -> dict[str, Any] | None:
        """best/ensemble.json: the latest ensemble built (members with weights, its metrics, the best single model's); None if none."""
        path = self.run_dir / BEST_DIR / ENSEMBLE_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def baselines(self) -> dict[str, dict[str, float]]:
        """The task's baselines (`trainables.baselines`): name -> {"val_rmse": ..., "test_rmse": ..., every metric
        on validation and test}, in the order they were computed; {} for a run started before baselines existed."""
        path = self.run_dir / BASELINES_FILE
        return json.loads(path.read_text())["baselines"] if path.is_file() else {}


def read_run(run_dir: Path) -> Run:
    """A run directory of this tool, or a UserError saying it is not one."""
    run_dir = check_run_dir(Path(run_dir))
    return Run(run_dir, read_experiment(run_dir))


def status_counts(trials: list[TrialRecord], max_epochs: int) -> dict[str, int]:
    """{status: how many trials have it}: the summary's and the report's counts."""
    return dict(Counter(t.status(max_epochs) for t in trials))


def leaderboard(trials: list[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
    """Trials with a metric, best first (each at its best epoch), then those without one."""
    scored = [t for t in trials if t.best(metric, mode) is not None]
    scored.sort(key=lambda t: t.best(metric, mode), reverse=(mode == "max"))
    return scored + [t for t in trials if t.best(metric, mode) is None]


def leaderboard_rows(trials: list[TrialRecord], metric: str, mode: str, max_epochs: int) -> list[dict[str, Any]]:
    """The leaderboard as rows (rank, trial_id, family, status, epochs, best value, parameter count, latency at batch
    1 and 256, every hyperparameter), best first:
    what `orchestrator best` prints and the report's table shows."""
    return [
        {"rank": i + 1, "trial_id": t.trial_id, "family": t.family, "status": t.status(max_epochs), "epochs": t.epochs,
         "best": t.best(metric, mode), "params": t.num_params, "latency_ms": t.latency_ms, "latency_ms_256": t.latency_ms_256,
         "hyperparameters": t.hparams()}
        for i, t in enumerate(leaderboard(trials, metric, mode))
    ]
