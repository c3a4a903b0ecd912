"""Reading a run directory without Ray: trials, their results, checkpoints and the leaderboard.

Everything here works on a finished run, an interrupted one and one still running (it reads the files
Tune writes per trial: params.json, result.json, checkpoint_*/).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import UserError
from trainables import constants as C
from trainables.constants import DIVERGED_PENALTY, META_FILE, STATE_FILE
from trainables.training import TrialConfig

EXPERIMENT_FILE = "experiment.yaml"  # the resolved experiment config, written when the run starts
BEST_DIR = "best"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
UNFINISHED = "unfinished"


@dataclass
class TrialRecord:
    """One trial as found on disk."""

    trial_id: str
    path: Path
    config: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def family(self) -> str:
        return self.config.get("arch", {}).get("family", "?")

    @property
    def epochs(self) -> int:
        return max((r.get("training_iteration", 0) for r in self.rows), default=0)

    @property
    def diverged(self) -> bool:
        return any(r.get(C.DIVERGED) for r in self.rows)

    def values(self, metric: str) -> list[float]:
        return [r[metric] for r in self.rows if isinstance(r.get(metric), (int, float)) and not r.get(C.DIVERGED) and math.isfinite(r[metric])]

    def best(self, metric: str, mode: str) -> float | None:
        values = self.values(metric)
        if not values:
            return None
        return min(values) if mode == "min" else max(values)

    def status(self, max_epochs: int) -> str:
        """failed / diverged / unfinished (running, or interrupted and not resumed yet) / finished / stopped early."""
        if self.error:
            return "failed"
        if self.diverged:
            return "diverged"
        if not self.rows or not self.rows[-1].get("done"):
            return UNFINISHED  # Tune marks a trial's final result `done`, whatever ended it
        if self.epochs >= max_epochs:
            return "finished"
        return "stopped early"

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
    value = meta.get("value") if meta.get("metric") == metric else None
    if isinstance(value, (int, float)) and value == value and abs(value) < DIVERGED_PENALTY:
        return float(value)
    return None


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
    for params in Path(run_dir).glob("*/params.json"):
        tdir = params.parent
        try:
            config = json.loads(params.read_text())
        except json.JSONDecodeError:
            continue
        error_file = tdir / "error.txt"
        error = error_file.read_text().strip().splitlines()[-1] if error_file.is_file() and error_file.read_text().strip() else None
        trial_id = tdir.name.split("_", 1)[-1]
        trial = TrialRecord(trial_id, tdir, config, _read_rows(tdir / "result.json"), error)
        found.append((_started(trial, params), trial))
    return [trial for _, trial in sorted(found, key=lambda pair: pair[0])]


def _started(trial: TrialRecord, params: Path) -> tuple[int, float]:
    """When a trial's first epoch began (the exact end time the trainable reports, less the epoch's duration);
    trials with no epoch yet after all others, by their params.json. Not params.json alone: Tune writes the
    trial folders in a staging directory and copies them to storage, so their times tell copies apart, not starts."""
    if trial.rows and isinstance(trial.rows[0].get("timestamp"), (int, float)):
        first = trial.rows[0]
        return 0, float(first["timestamp"]) - float(first.get("time_this_iter_s") or 0.0)
    return 1, params.stat().st_mtime


def unfinished_trials(run_dir: Path) -> list[str]:
    """Trial ids that Tune's latest saved experiment state holds as not finished (what `resume` would continue).

    After Ctrl-C, Tune stops its trials in memory but saves them as RUNNING, so the file, not the
    in-memory ResultGrid, tells an interrupted search from a finished one.
    """
    # By name, which carries the session's start time: Tune's final sync rewrites every state file at once,
    # so their modification times cannot tell the latest session.
    states = sorted(Path(run_dir).glob("experiment_state-*.json"))
    if not states:
        return []
    state = json.loads(states[-1].read_text())
    unfinished = []
    for trial_json, _ in state.get("trial_data", []):
        trial = json.loads(trial_json)
        if trial.get("status") in ("PENDING", "RUNNING", "PAUSED"):
            unfinished.append(trial.get("trial_id"))
    return unfinished


def read_experiment(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((Path(run_dir) / EXPERIMENT_FILE).read_text())


def leaderboard(trials: list[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
    """Trials with a metric, best first (each at its best epoch), then those without one."""
    scored = [t for t in trials if t.best(metric, mode) is not None]
    scored.sort(key=lambda t: t.best(metric, mode), reverse=(mode == "max"))
    return scored + [t for t in trials if t.best(metric, mode) is None]
