"""The trackers' Ray Tune callbacks: Ray's own MLflow and W&B callbacks, changed where they did not fit.

`orchestrator.loggers` holds the records (names, extras, when each is usable) and says what was changed
and why; this module imports Ray and the tracker's package, so only a run that uses a tracker loads it.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

from orchestrator.loggers import NOT_METRICS, flat_params
from trainables.trial import family_of

CHECKPOINT_ARTIFACT = "best_checkpoint"  # where a trial's best checkpoint lands among its MLflow run's artifacts


def _run_name(trial) -> str:
    return f"{family_of(trial.config, 'trial')}_{trial.trial_id}"  # as the trial's directory is named


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
        run = self.mlflow_util.start_run(run_name=_run_name(trial), tags=tags)
        self._trial_runs[trial] = run.info.run_id
        params = [Param(k, str(v)) for k, v in flat_params(trial.config).items()]
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


class WandbTrialActor(_WandbLoggingActor):
    """Ray's logging actor for one trial's W&B run, waiting at the end until W&B has written the run.

    `wandb.finish()` returns before W&B's service process has flushed the run file, and Ray's callback kills
    the actor as soon as `run` returns; the service then dies with it, leaving an offline run of only its
    header (seen with wandb 0.31 for a trial that ended last). `wandb.teardown()` waits for the service."""

    def run(self):
        super().run()
        self._wandb.teardown()


class WandbTrials(WandbLoggerCallback):
    """One W&B run per trial (Ray's logging actor per trial), grouped by experiment, with the flat hyperparameters
    as its config; with `mode="offline"` no API key is asked for (nothing is sent: `wandb sync` uploads later)."""

    _logger_actor_cls = WandbTrialActor

    def setup(self, *args, **kwargs):
        if self.kwargs.get("mode") in ("offline", "disabled"):
            return  # Ray's setup insists on an API key (unless WANDB_MODE is exported), which an offline run does not use
        super().setup(*args, **kwargs)

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs):
        wandb_init_kwargs.update(config=flat_params(trial.config), name=_run_name(trial))
        super()._start_logging_actor(trial, exclude_results, **wandb_init_kwargs)

    def on_experiment_end(self, trials, **info):
        # Trials that an interrupted experiment (Ctrl-C) stopped never reach log_trial_end, and Ray's callback
        # would wait for their W&B runs until its timeout (30 minutes): end those runs here first.
        for trial in list(self._trial_queues):
            self._signal_logging_actor_stop(trial)
        super().on_experiment_end(trials, **info)

    def log_trial_result(self, iteration: int, trial, result: dict[str, Any]):
        # Ray's actor merges a result's nested Tune config into the W&B config; the flat one is already there.
        super().log_trial_result(iteration, trial, {k: v for k, v in result.items() if k != "config"})


def mlflow_callback(uri: str, experiment: str, artifact_location: str | None) -> MLflowTrials:
    return MLflowTrials(uri, experiment, artifact_location)


def wandb_callback(project: str, *, group: str, mode: str, root: str) -> WandbTrials:
    # console "off": the actor's output is not the user's; silent: no banner per trial in Ray's worker logs.
    # upload_timeout: how long the end of the experiment waits for the W&B runs to be written (and uploaded, online).
    return WandbTrials(project=project, group=group, mode=mode, dir=root, upload_timeout=300,
                       settings={"silent": True, "console": "off"})
