"""The MLflow tracker's Ray Tune callback: Ray's `MLflowLoggerCallback`, changed where it did not fit (see the package).

Imports Ray and MLflow, so only a run that uses the tracker loads it.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback

from trainables.constants import BOOKKEEPING, DIVERGED
from trainables.trial import TrialConfig, family_of, trial_dirname

# Result keys that are not measurements to chart: Tune's bookkeeping, the epoch (the metrics' step), the
# report's wall-clock time (their timestamp) and the divergence flag.
NOT_METRICS = BOOKKEEPING | {"training_iteration", "timestamp", DIVERGED}
CHECKPOINT_ARTIFACT = "best_checkpoint"  # where a trial's best checkpoint lands among its MLflow run's artifacts


class MLflowTrials(MLflowLoggerCallback):
    """One MLflow run per trial: flat hyperparameters as params, each epoch's values as metrics (one batch per
    epoch, step = epoch), and the trial's best checkpoint (Tune ranks them by the experiment's metric) as an artifact."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None):
        super().__init__(tracking_uri, experiment_name=experiment_name)
        self.artifact_location = artifact_location

    def setup(self, *args, **kwargs):
        # A new local store announces each table it creates at INFO: not news to the user of this run.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        # Ray's own setup, plus where a new experiment keeps its artifacts (beside the run's local store).
        self.mlflow_util.setup_mlflow(tracking_uri=self.tracking_uri, experiment_name=self.experiment_name,
                                      artifact_location=self.artifact_location)
        self.tags = self.tags or {}
        self._trial_runs = {}
        self._ended = set()

    def _client(self):
        return self.mlflow_util._get_client()

    def log_trial_start(self, trial):
        if trial in self._trial_runs:  # a trial restarted after a failure keeps its MLflow run
            return
        from mlflow.entities import Param

        tags = {**self.tags, "trial_id": trial.trial_id, "family": family_of(trial.config), "experiment": self.experiment_name}
        run = self.mlflow_util.start_run(run_name=trial_dirname(trial), tags=tags)
        self._trial_runs[trial] = run.info.run_id
        params = [Param(k, str(v)) for k, v in TrialConfig.from_tune(trial.config).flat().items()]
        self._client().log_batch(run.info.run_id, params=params)

    def log_trial_result(self, iteration: int, trial, result: dict[str, Any]):
        from mlflow.entities import Metric

        if trial not in self._trial_runs:
            self.log_trial_start(trial)
        step = result.get("training_iteration", iteration)
        stamp = int(1000 * result.get("timestamp", time.time()))
        metrics = [Metric(k, float(v), stamp, step) for k, v in result.items()
                   if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        self._client().log_batch(self._trial_runs[trial], metrics=metrics)

    def log_trial_end(self, trial, failed: bool = False):
        run_id = self._trial_runs.get(trial)
        if run_id is None:  # a trial that ended before it started (an error placing it): no MLflow run to close
            return
        best = trial.run_metadata.checkpoint_manager.best_checkpoint_result
        if best is not None and best.checkpoint is not None:
            # Tune holds back a stopping trial's end until its last checkpoint is saved, so the best is final here.
            with tempfile.TemporaryDirectory() as local:
                self._client().log_artifacts(run_id, best.checkpoint.to_directory(local), artifact_path=CHECKPOINT_ARTIFACT)
        self.mlflow_util.end_run(run_id=run_id, status="FAILED" if failed else "FINISHED")
        self._ended.add(run_id)

    def on_experiment_end(self, trials, **info):
        # Trials that an interrupted experiment (Ctrl-C) stopped never reach log_trial_end: their runs end as KILLED.
        for run_id in set(self._trial_runs.values()) - self._ended:
            self.mlflow_util.end_run(run_id=run_id, status="KILLED")


def mlflow_callback(uri: str, experiment: str, artifact_location: str | None) -> MLflowTrials:
    return MLflowTrials(uri, experiment, artifact_location)


