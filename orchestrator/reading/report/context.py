"""What every section reads: the run and its trials, read once, with the views several sections share.

Built once per report (`Context.read`) and handed to each section's `data()`. The shared views (statuses,
flat hyperparameters, the time axis, the fANOVA ranking) are computed on first use and then kept, so a
section pays only for what it reads and nothing is computed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from orchestrator.reading import results as R
from orchestrator.reading.report.importance import fanova_importance, varying
from orchestrator.reading.report.timing import TimeAxis, sessions
from trainables.rows import usable_value


def usable(row: dict, metric: str) -> bool:
    """A result whose metric can be compared (`trainables.rows.usable_value`)."""
    return usable_value(row, metric) is not None


@dataclass(frozen=True)
class Context:
    """A run as the report sees it. `families`: the search space's families, in its order (which fixes their
    colours); `log_names`: the flat hyperparameter names the space samples on a log scale."""

    run: R.Run
    trials: list[R.TrialRecord]
    families: list[str]
    log_names: frozenset[str]

    @classmethod
    def read(cls, run_dir: Path) -> Context:
        """Reads a run directory (a UserError if it is not one) without torch or Ray Tune."""
        run = R.read_run(Path(run_dir).resolve())
        space = run.space()
        return cls(run, run.trials(), list(space.families), frozenset(space.log_scaled()))

    @property
    def metric(self) -> str:
        return self.run.metric

    @property
    def mode(self) -> str:
        return self.run.mode

    @property
    def max_epochs(self) -> int:
        return self.run.max_epochs

    @cached_property
    def status(self) -> dict[str, str]:
        """trial id -> finished / stopped early / failed / diverged / unfinished (see `TrialRecord.status`)."""
        return {t.trial_id: t.status(self.max_epochs) for t in self.trials}

    @cached_property
    def hp(self) -> dict[str, dict[str, Any]]:
        """trial id -> its flat hyperparameters (`family`, `model/hidden_size`, `lr`, ...)."""
        return {t.trial_id: t.hparams() for t in self.trials}

    @cached_property
    def scored(self) -> list[R.TrialRecord]:
        """The trials with at least one usable metric value, in start order."""
        return [t for t in self.trials if t.best(self.metric, self.mode) is not None]

    @cached_property
    def varying(self) -> list[str]:
        """The hyperparameters whose value differs between the scored trials (the others say nothing)."""
        return varying(self.scored, self.hp)

    @cached_property
    def axis(self) -> TimeAxis:
        return TimeAxis([s for t in self.trials for s in sessions(t.rows)])

    @cached_property
    def importance(self) -> dict[str, Any]:
        """fANOVA over the scored trials: the importance section shows it, the parallel coordinates order their axes by it."""
        return fanova_importance(self.scored, self.metric, self.mode, self.hp, self.log_names)

    @cached_property
    def baseline(self) -> dict[str, Any] | None:
        """The best of the task's baselines (`baselines.json`) on the run's metric, `{"name", "value"}`: the line the
        progress figures draw for "what no search is needed for"; None when the run has none for its metric."""
        found = [(name, v) for name, values in self.run.baselines().items() if (v := usable_value(values, self.metric)) is not None]
        if not found:
            return None
        name, value = (min if self.mode == "min" else max)(found, key=lambda pair: pair[1])
        return {"name": name, "value": value}

    @cached_property
    def best_model(self) -> dict[str, Any] | None:
        """best/metrics.json (the exported best trial and its test metrics), None until the run has finished."""
        return self.run.best_model()
