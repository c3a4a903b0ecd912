"""The Python API: run an experiment and read a run back, from a notebook or a pipeline.

`run` goes through the same library as `orchestrator run` (config validation, the search space checks,
the runner) and `load_run` through the same reading layer as `orchestrator best` (`results`, `storage`),
so both accept what the CLI accepts and fail with its messages: bad input raises `UserError`, a run
where no trial succeeded raises `RunFailed`, and nothing here exits the process. Reading a run imports
neither torch nor Ray Tune; `Run.best_model` imports torch when it is called.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Union

from orchestrator.errors import UserError
from orchestrator.reading import results as R
from orchestrator.reading.frames import table


class RunFailed(RuntimeError):
    """The run ended and no trial reported a usable metric (every trial failed or diverged); `.run` holds what it wrote."""

    def __init__(self, message: str, run: "Run"):
        super().__init__(message)
        self.run = run


@dataclass(frozen=True)
class Run:
    """A run read back: its trials, the best trial, DataFrames of both, and the best model.

    `path` is the run directory read (for a run stored at a URI, a copy taken when it was loaded) and
    `location` what was asked for. `trials` are the records `orchestrator best` reads (`trial_id`,
    `family`, `epochs`, `rows`: one dict per epoch as in result.json, `hparams()`, `best(metric, mode)`).
    """

    location: str
    path: Path

    @cached_property
    def _run(self) -> R.Run:
        return R.read_run(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def experiment(self) -> dict[str, Any]:
        """The resolved experiment the run was started with (experiment.yaml)."""
        return self._run.experiment

    @property
    def metric(self) -> str:
        return self._run.metric

    @property
    def mode(self) -> str:
        return self._run.mode

    @cached_property
    def trials(self) -> list[R.TrialRecord]:
        """Every trial, in the order the trials started."""
        return self._run.trials()

    @property
    def best_trial(self) -> R.TrialRecord | None:
        """The exported best trial (best/metrics.json), or before the export the leaderboard's first; None when no trial has a metric."""
        exported = self._run.best_model()
        by_id = {t.trial_id: t for t in self.trials}
        if exported and exported.get("trial_id") in by_id:
            return by_id[exported["trial_id"]]
        ranked = R.leaderboard(self.trials, self.metric, self.mode)
        return ranked[0] if ranked and ranked[0].best(self.metric, self.mode) is not None else None

    @property
    def best_metrics(self) -> dict[str, Any] | None:
        """best/metrics.json: the best trial's validation and test metrics; None before the export."""
        return self._run.best_model()

    @property
    def baselines(self) -> dict[str, dict[str, float]]:
        """The task's baselines, the yardstick of its metrics: name (persistence, mean, majority, linear, unigram,
        bigram) -> {"val_<metric>": ..., "test_<metric>": ..., every metric and the loss}; {} for older runs."""
        return self._run.baselines()

    def dataframe(self, per_epoch: bool = False):
        """A pandas DataFrame of the run: one row per trial (trial_id, family, every hyperparameter by its flat
        name, status, epochs, `<metric>_last` and `<metric>_best` of every metric, time_total_s, started,
        ended, error, num_params, latency_ms, latency_ms_256, checkpoint), or with `per_epoch=True` one row per epoch (trial_id, family, epoch and every value
        the epoch reported); join the two on trial_id."""
        import pandas as pd

        rows, columns, times = table(self.trials, self.metric, self.mode, self._run.max_epochs, per_epoch)
        frame = pd.DataFrame(rows, columns=columns)
        for column in times:
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame

    @property
    def ensemble(self) -> dict[str, Any] | None:
        """The latest ensemble built for this run (`ensemble:` or `export --ensemble`): members with weights, its
        validation and test metrics beside the best single model's; None when none was built."""
        return self._run.ensemble()

    def trial(self, trial_id: str) -> "Trial":
        """One trial by its id (as `orchestrator best` lists them), with its figures and `model()`."""
        from orchestrator.reading.selection import chosen_trials

        chosen_trials(self.trials, self.metric, self.mode, self._run.max_epochs, trial_id=trial_id)  # the CLI's errors
        return Trial(self, next(t for t in self.trials if t.trial_id == trial_id))

    def pareto(self) -> list[R.TrialRecord]:
        """The trials no other beats in the metric, the parameter count and the latency at once (`best --pareto`)."""
        from orchestrator.reading.selection import pareto_front

        return pareto_front(self.trials, self.metric, self.mode)

    def export(self, out: Union[str, Path], *, trial: str | None = None, family: str | None = None, pick: str | None = None,
               ensemble: int | None = None) -> Path:
        """Writes a model of this run to `out`, as `orchestrator export` does: the best (default), a trial's, a
        family's best, the one a rule picks ("smallest within 1%", "fastest within 2%") or an ensemble of the top K."""
        from orchestrator.running.best_model import export_chosen

        export_chosen(self.path, Path(out), trial_id=trial, family=family, rule=pick, ensemble=ensemble)
        return Path(out)

    def best_model(self):
        """The exported best model (best/model.pt) loaded with `trainables.load_model`: an nn.Module with `predict`."""
        path = self.path / R.BEST_DIR / R.MODEL_FILE
        if not path.is_file():
            raise UserError(f"{self.location}: no exported best model ({R.BEST_DIR}/{R.MODEL_FILE}); an interrupted run "
                            f"has one once resumed, or write one now with `orchestrator export {self.location} --out model.pt`")
        from trainables import load_model

        return load_model(path)

    def __repr__(self) -> str:
        return f"Run({self.location!r}: {len(self.trials)} trial(s), {self.metric} ({self.mode}))"


@dataclass(frozen=True)
class Trial:
    """One trial of a run read back: its record (`record.rows`, `record.hparams()`), its figures, and its model."""

    run: Run
    record: R.TrialRecord

    @property
    def trial_id(self) -> str:
        return self.record.trial_id

    @property
    def family(self) -> str:
        return self.record.family

    @property
    def num_params(self) -> int | None:
        return self.record.num_params

    @property
    def latency_ms(self) -> float | None:
        return self.record.latency_ms

    @property
    def checkpoint(self) -> Path | None:
        """The trial's kept checkpoint with the best metric value (what `model()` loads); None when it keeps none."""
        found = self.record.best_checkpoint(self.run.metric, self.run.mode)
        return found[1] if found else None

    def model(self):
        """This trial's best checkpoint as an exported model (`load_model`'s `ExportedModel`: `predict`, `module`),
        evaluated on validation and test (its `metrics`), as `orchestrator export --trial ID` writes it."""
        import tempfile

        from trainables import load_model

        with tempfile.TemporaryDirectory() as tmp:
            path = self.run.export(Path(tmp) / "model.pt", trial=self.trial_id)
            # A family of the run's own space is the user's own class, which this user chose to train: trusted.
            return load_model(path, trust_code=self.family in self.run._run.space().models)

    def __repr__(self) -> str:
        return f"Trial({self.trial_id}: {self.family}, {self.record.epochs} epoch(s))"


def load_run(location: Union[str, Path]) -> Run:
    """A run read back from its directory (`runs/NAME`) or the URI it is stored at (`s3://bucket/runs/NAME`, read
    from a copy taken now, as `orchestrator best` does); a UserError when it is not a run of this tool."""
    from orchestrator.reading.storage import readable_run

    path = Path(readable_run(str(location))).resolve()  # absolute: its trials' paths (checkpoints) do not depend on the CWD
    R.read_run(path)  # not a run directory: the CLI's message now, not on first use
    return Run(str(location), path)


Source = Union[str, Path, dict, Any]  # a YAML path, a mapping, an ExperimentConfig or a validated Experiment


def run(experiment: Source = None, *, address: str | None = None, stop: Any = None, startup_fraction: float | None = None,
        out: Any = None, **overrides: Any) -> Run:
    """Runs an experiment end to end, as `orchestrator run` does, and returns the run read back.

    `experiment`: a YAML file, a mapping of the same keys, an `ExperimentConfig` or an `Experiment` (None: the
    built-in quickstart). Keyword arguments replace keys, as `--set` does: `num_samples=4`, and for a nested
    key its dotted name, `**{"scheduler.max_epochs": 3}`. A taken run name gets a numeric suffix (`name-2`).
    Two search options are not experiment keys: `stop`, a stop condition beside `max_epochs` and the time
    budget (a `ray.tune.Stopper`, e.g. one that ends the search after N epochs in all, or a function
    `(trial_id, result) -> bool` that ends a trial), and `startup_fraction`, the share of the trials HyperOpt's
    and Optuna's TPE draw at random before modelling (default 1/3, at least 3 and at most 20 trials).
    `out`: where the progress goes (default: standard output).
    Raises UserError for bad input (nothing written), RunFailed when no trial succeeded, KeyboardInterrupt
    when interrupted (the state is saved: `orchestrator resume` continues it).
    """
    from orchestrator.reading.storage import Storage
    from orchestrator.running import runner

    exp = _experiment(experiment, overrides)
    store = Storage.of(exp.config.storage)
    name = _free_name(store, exp.config.name)
    exp = dataclasses.replace(exp, config=exp.config.model_copy(update={"name": name}))
    status = runner.run(exp, address=address, explicit_name=True, out=out, stop=stop, startup_fraction=startup_fraction)
    if status == 130:
        raise KeyboardInterrupt(f"interrupted; continue with: orchestrator resume {store.run(name)}")
    result = load_run(store.run(name))
    if status != 0:
        raise RunFailed(f"{store.run(name)}: no trial reported a usable {result.metric} (see each trial's error.txt)", result)
    return result


def _free_name(store, name: str) -> str:
    """`name`, or the name the CLI would take for it when taken (`name-2`, ...): the rule of `Storage.new_run`."""
    path = store.new_run(name, explicit=False)
    if store.remote:  # new_run made a local directory for the run's mirror; the runner makes its own
        shutil.rmtree(path.parent, ignore_errors=True)
    return path.name


def _plain(value: Any) -> Any:
    """A mapping's values as YAML would give them (JSON's types); a model class (`"model": Conv`) stays the class."""
    if isinstance(value, type):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def _experiment(source: Source, overrides: dict[str, Any]):
    """The validated Experiment for any accepted source, with `overrides` applied where `--set` would apply them.

    Values stay Python values (not YAML text): a mapping may hold what YAML cannot, such as a model class."""
    from orchestrator.experiment.config import ExperimentConfig
    from orchestrator.experiment.load import (
        QUICKSTART,
        Experiment,
        experiment_from_mapping,
        read_yaml,
    )

    if isinstance(source, Experiment) and not overrides:
        return source
    if source is None or isinstance(source, (str, Path)):
        file, label = Path(source) if source else QUICKSTART, None
        raw = read_yaml(file)
    elif isinstance(source, Experiment):
        file, label, raw = source.file, source.label, source.config.model_dump()
    elif isinstance(source, (ExperimentConfig, dict)):
        # No file: relative paths (data, a search space file) are taken from the working directory.
        file, label = Path.cwd() / "experiment", "experiment"
        raw = source.model_dump() if isinstance(source, ExperimentConfig) else _plain(source)
    else:
        raise UserError(f"experiment: expected a YAML path, a mapping or an ExperimentConfig, but got {type(source).__name__}")
    for key, value in overrides.items():
        _assign(raw, key, _plain(value))
    return experiment_from_mapping(raw, file, label=label)


def _assign(raw: dict, key: str, value: Any) -> None:
    """`raw[a][b] = value` for key `a.b`, as `--set a.b=...` assigns it (mappings on the way created)."""
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"{key}={value!r}: '{part}' holds {child!r}, not a mapping")
        node = child
    node[last] = value
