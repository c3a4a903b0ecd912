"""TensorBoard: one event stream per trial (curves and HParams), one for the whole search, and the server.

Tune's own TensorBoard logger writes HParams only when a trial ends and, with a conditional space, lists
only the first trial's hyperparameters as columns. This callback replaces it (being a TBXLoggerCallback,
it keeps Tune from adding the default one): every trial's stream declares the union of hyperparameter
names of the whole space, so the HParams dashboard shows every trial with every column, while running.
Files go to the trial's directory in the driver's staging area, which Tune syncs to the storage path
like its own logs, so this works for local and cloud storage alike.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from ray.tune import Callback
from ray.tune.logger import TBXLoggerCallback
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import (
    HParamsPluginData,
    SessionEndInfo,
    SessionStartInfo,
)

from trainables import constants as C
from trainables.trial import TrialConfig


def _summary(tag: str, **content) -> Summary:
    data = HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **content)
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString()))
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


def _value(v: Any) -> struct_pb2.Value:
    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, (int, float)):
        return struct_pb2.Value(number_value=float(v))
    return struct_pb2.Value(string_value=str(v))


DATA_TYPES = {bool: api_pb2.DATA_TYPE_BOOL, int: api_pb2.DATA_TYPE_FLOAT64, float: api_pb2.DATA_TYPE_FLOAT64, str: api_pb2.DATA_TYPE_STRING}


def experiment_summary(hparam_types: dict[str, type], metrics: list[str]) -> Summary:
    """The HParams experiment: every hyperparameter name of the space and the metric tags to show as columns."""
    infos = [api_pb2.HParamInfo(name=name, type=DATA_TYPES.get(t, api_pb2.DATA_TYPE_STRING)) for name, t in sorted(hparam_types.items())]
    metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics]
    return _summary(metadata.EXPERIMENT_TAG, experiment=api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos))


def session_start_summary(hparams: dict[str, Any], group: str) -> Summary:
    info = SessionStartInfo(group_name=group)
    for k, v in hparams.items():
        info.hparams[k].CopyFrom(_value(v))
    return _summary(metadata.SESSION_START_INFO_TAG, session_start_info=info)


def session_end_summary(failed: bool) -> Summary:
    status = api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS
    return _summary(metadata.SESSION_END_INFO_TAG, session_end_info=SessionEndInfo(status=status))


def best_key(metric: str) -> str:
    return f"best_{metric}"


MUTATED = "mutated"  # scalars of the hyperparameters PBT changed in a running trial: `mutated/lr`


class TrialTensorBoard(TBXLoggerCallback):
    """Writes each trial's curves and HParams session into `<trial dir>/events.out.tfevents.*`."""

    def __init__(self, metric: str, mode: str, hparam_types: dict[str, type]):
        super().__init__()
        self.metric, self.mode = metric, mode
        self.experiment = experiment_summary(hparam_types, [metric, best_key(metric), C.VAL_LOSS, C.TRAIN_LOSS])
        self._writers: dict[Any, Any] = {}
        self._best: dict[Any, float] = {}
        self._started: dict[Any, dict] = {}  # each trial's config at its start (PBT may change it later)

    def _writer(self, trial):
        if trial not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(trial.local_path, flush_secs=10)
            hparams = TrialConfig.from_tune(trial.config).flat()
            writer.file_writer.add_summary(self.experiment)
            writer.file_writer.add_summary(session_start_summary(hparams, group=trial.trial_id))
            self._writers[trial] = writer
        return self._writers[trial]

    def log_trial_start(self, trial):
        self._writer(trial)

    def log_trial_result(self, iteration: int, trial, result: dict):
        writer = self._writer(trial)
        step = result.get("training_iteration", iteration)
        # Every metric the task reported (accuracy, macro-F1, log loss...), not only the one the search ranks by.
        metrics = [key for key in result if key in C.MODES and key != self.metric]
        for key in (*C.CURVE_KEYS, self.metric, *metrics):
            value = result.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(key, value, global_step=step)
        # A hyperparameter population-based training changed mid-trial, as a curve from the epoch it changed.
        started = TrialConfig.from_tune(self._started.setdefault(trial, trial.config)).flat()
        now = TrialConfig.from_tune(result.get("config") or trial.config).flat()
        for key, value in now.items():
            if value != started.get(key) and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(f"{MUTATED}/{key}", value, global_step=step)
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not result.get(C.DIVERGED):
            best = self._best.get(trial)
            better = best is None or (value < best if self.mode == "min" else value > best)
            self._best[trial] = value if better else best
            writer.add_scalar(best_key(self.metric), self._best[trial], global_step=step)

    def log_trial_end(self, trial, failed: bool = False):
        writer = self._writers.pop(trial, None) or self._writer(trial)
        self._writers.pop(trial, None)
        writer.file_writer.add_summary(session_end_summary(failed))
        writer.close()

    def on_experiment_end(self, trials, **info):
        for trial in list(self._writers):
            self.log_trial_end(trial, failed=False)


EXPERIMENT_DIR = "_experiment"  # the search as a whole, a run of its own next to the trials' runs
EXPERIMENT_TAGS = ("trials_running", "trials_completed", "trials_failed")


def experiment_tag(name: str) -> str:
    return f"experiment/{name}"


class ExperimentTensorBoard(Callback):
    """Writes the search as a whole into `<run>/_experiment/`: the best-so-far metric and trial counts.

    The step of every point is the number of seconds since the experiment started, so TensorBoard's
    Step axis reads as wall time; the start survives a resume (callback state), so a resumed run
    continues the same curves instead of restarting at 0 (which TensorBoard would treat as orphaned
    data). Points are written only when something changes and flushed at once: Tune's final sync of
    the driver's staging directory runs before `on_experiment_end`, so unflushed points would be lost.
    """

    def __init__(self, metric: str, mode: str):
        self.metric, self.mode = metric, mode
        self.origin: float | None = None
        self.best: float | None = None
        self.completed: set[str] = set()
        self.failed: set[str] = set()
        self.running: set[str] = set()
        self._last_step: dict[str, int] = {}
        self._writer = None

    def __getstate__(self):
        # The tuner pickles its callbacks; an open file writer must not travel with them.
        return {**self.__dict__, "_writer": None}

    def get_state(self) -> dict:
        return {"origin": self.origin, "best": self.best, "completed": sorted(self.completed), "failed": sorted(self.failed)}

    def set_state(self, state: dict) -> None:
        self.origin, self.best = state["origin"], state["best"]
        self.completed, self.failed = set(state["completed"]), set(state["failed"])
        self.running = set()  # trials running at the interruption start again and are counted again
        self._last_step = {}

    def _log(self, trial, values: dict[str, float]) -> None:
        now = time.time()
        if self.origin is None:
            self.origin = now
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # The experiment's staging directory on the driver, which Tune syncs to `<storage>/<name>/`.
            self._writer = SummaryWriter(str(Path(trial.storage.experiment_driver_staging_path) / EXPERIMENT_DIR))
        seconds = int(round(now - self.origin))
        for name, value in values.items():
            # Two changes within one second would share a step, and TensorBoard keeps one point per step (a
            # trial that starts and ends within the second would never show as running): move the later on.
            step = max(seconds, self._last_step.get(name, -1) + 1)
            self._last_step[name] = step
            self._writer.add_scalar(experiment_tag(name), value, global_step=step, walltime=now)
        self._writer.flush()

    def _log_counts(self, trial) -> None:
        counts = (len(self.running), len(self.completed), len(self.failed))
        self._log(trial, dict(zip(EXPERIMENT_TAGS, counts)))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._log_counts(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or result.get(C.DIVERGED):
            return
        if self.best is None or (value < self.best if self.mode == "min" else value > self.best):
            self.best = float(value)
            self._log(trial, {best_key(self.metric): self.best})

    def on_step_end(self, iteration, trials, **info):
        # A trial paused at a rung (HyperBand, ASHA's promotions) runs no more; Tune has no callback for a pause,
        # and starts the trial again (on_trial_start) when it resumes.
        paused = [t for t in trials if t.status == "PAUSED" and t.trial_id in self.running]
        if paused:
            self.running.difference_update(t.trial_id for t in paused)
            self._log_counts(paused[-1])

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.completed.add(trial.trial_id)
        self._log_counts(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed.add(trial.trial_id)
        self._log_counts(trial)

    def on_experiment_end(self, trials, **info):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def serve_command(run_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(run_dir), "--port", str(port), "--host", host]


def serve(run_dir: Path, port: int, host: str = "127.0.0.1") -> int:
    """Runs TensorBoard over a run directory in the foreground (bound to loopback unless asked otherwise)."""
    return subprocess.call(serve_command(run_dir, port, host))
