"""Everything checked and loaded before a run starts: the data path, the task's data, the metric, the space
against the data; and the experiment of an existing run directory, for resume and export.

Nothing here writes anything, so a rejected experiment leaves no run directory behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator import results as R
from orchestrator.config import Experiment, ExperimentConfig, check_space, parse_config
from orchestrator.errors import UserError
from trainables import constants as C
from trainables.tasks import TASKS, DataError, TaskData


@dataclass(frozen=True)
class Prepared:
    """An experiment whose data is loaded and checked: what the search and the export need."""

    exp: Experiment
    data: TaskData
    metric: str
    mode: str


def resolve_data_path(config: ExperimentConfig, file: Path) -> ExperimentConfig:
    """`task.data` as an absolute path: relative to the experiment file's folder if it exists there, else to the CWD."""
    data = config.task.data
    if data is None or "://" in data or Path(data).is_absolute():
        return config
    beside = (file.parent / data).resolve()
    path = beside if beside.exists() else Path(data).resolve()
    return config.model_copy(update={"task": config.task.model_copy(update={"data": str(path)})})


def prepare(exp: Experiment) -> Prepared:
    """The task's data, loaded and preprocessed once, checked against the space, with the metric and mode to optimize."""
    exp = Experiment(resolve_data_path(exp.config, exp.file), exp.space, exp.file)
    try:
        data = TASKS[exp.config.task.kind].load(exp.config.task)
    except DataError as exc:
        raise UserError(f"{exp.file}: {exc}") from None
    check_space_fits(exp, data)
    metric, mode = exp.config.resolved_metric(data.metric)
    allowed = {data.metric, C.VAL_LOSS}
    if metric not in allowed:
        raise UserError(
            f"{exp.file}: key 'metric': value '{metric}': task {data.kind} reports {', '.join(sorted(allowed))}"
        )
    return Prepared(exp, data, metric, mode)


def check_space_fits(exp: Experiment, data: TaskData) -> None:
    """Builds a model for every choice option of the space on this task's data, so a family setting that
    cannot run the task (a bidirectional model predicting every next character) fails now, not in every trial."""
    import numpy as np

    from trainables.models import build_model
    from trainables.trial import TrialConfig

    for config in exp.space.probes(np.random.default_rng(exp.config.seed)):
        trial = TrialConfig.from_tune(config)
        try:
            build_model(trial.family, trial.model, data.spec)
        except ValueError as exc:
            raise UserError(f"{exp.space.source}: families.{trial.family}: {exc} (task {data.kind})") from None


def experiment_from_run(run_dir: Path) -> Experiment:
    """The Experiment a run directory was started with (for resume and for exporting an interrupted run)."""
    run = R.read_run(run_dir)
    file = run.run_dir / R.EXPERIMENT_FILE
    config = parse_config(migrate(run.experiment), str(file))
    return Experiment(config, check_space(config, file), file)


def migrate(resolved: dict) -> dict:
    """A run's experiment.yaml in today's schema. Runs started before schedulers had options of their own
    wrote ASHA's fields for every kind (`fifo` with grace_period and reduction_factor): those are dropped."""
    from orchestrator.schedulers import SCHEDULERS

    scheduler = dict(resolved.get("scheduler") or {})
    record = SCHEDULERS.get(scheduler.get("kind", ""))
    if record is not None:
        scheduler = {k: v for k, v in scheduler.items() if k in record.options.model_fields}
    return {**resolved, "scheduler": scheduler}
