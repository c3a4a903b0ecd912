"""Experiment trackers (`loggers: [mlflow, wandb]`): one record per tracker, each building a Ray Tune callback.

Each tracker gets one run per trial: the trial's hyperparameters under the flat names the leaderboard and
the DataFrame use (`family`, `model/hidden_size`, `lr`), its results every epoch, and for MLflow its best
checkpoint. Both are Ray's own callbacks, changed only where they did not fit:

- MLflow: `ray.air.integrations.mlflow.MLflowLoggerCallback` keeps the experiment set-up and each trial's
  MLflow run. Changed: the params (Ray's logs the nested Tune config, `arch/model/hidden_size`), the metrics
  (Ray's sends every number of the result, the config's included, one request each; here one batch per
  epoch of the epoch's own values) and the artifact (Ray's `save_artifact` copies the whole trial
  directory, every checkpoint and event file; here the trial's best checkpoint only).
- W&B: `ray.air.integrations.wandb.WandbLoggerCallback` unchanged in how it logs (one logging actor per
  trial, as W&B wants one process per run). Changed: the config is the flat hyperparameters (not also the
  nested Tune config), it runs offline when no API key is set (Ray's refuses to start without a key unless
  WANDB_MODE is exported), its actor waits for W&B to write the run before it is killed (with wandb
  0.31, Ray's lost the last trial's offline run: `wandb.WandbTrialActor`), and after Ctrl-C it ends the
  interrupted trials' runs (Ray's waited 30 minutes for them before the experiment could end).

This module imports neither Ray nor the trackers until a callback is built: the config validates
`loggers` with it, and `import orchestrator` stays light.
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

MLFLOW_URI_ENV = "MLFLOW_TRACKING_URI"
WANDB_PROJECT = "orchestrator"  # the W&B project when WANDB_PROJECT is unset; each experiment is a group in it
@dataclass(frozen=True)
class RunInfo:
    """What a tracker needs about the run: its name and its local directory (None when stored at a URI)."""

    name: str
    run_dir: Path | None


@dataclass(frozen=True)
class Tracker:
    """One experiment tracker: its name in `loggers`, the pip extra that installs it, the module that shows it is
    installed, and the builder of its Ray Tune callback."""

    name: str
    extra: str
    module: str
    build: Callable[[RunInfo], Any]
    help: str

    def missing(self) -> str | None:
        """Why the tracker cannot be used here (its package is not installed), or None."""
        if importlib.util.find_spec(self.module) is None:
            return (f"logger '{self.name}' needs the {self.module} package, which is not installed; install the extra: "
                    f"pip install -c constraints.txt -e '.[{self.extra}]'")
        return None


def _mlflow(info: RunInfo):
    from orchestrator.watch.trackers.mlflow import mlflow_callback

    uri = os.environ.get(MLFLOW_URI_ENV)
    artifacts = None
    if not uri:  # the run's own store: a SQLite file (MLflow 3 refuses its old file store) and its artifacts beside it
        uri = f"sqlite:///{info.run_dir / 'mlflow.db'}"
        artifacts = (info.run_dir / "mlartifacts").as_uri()
    return mlflow_callback(uri, info.name, artifacts)


def _wandb(info: RunInfo):
    from orchestrator.watch.trackers.wandb import wandb_callback

    project = os.environ.get("WANDB_PROJECT") or WANDB_PROJECT
    # Online with storage at a URI: W&B's local copy of each run goes to a temporary folder.
    root = str(info.run_dir) if info.run_dir else tempfile.mkdtemp(prefix="orchestrator-wandb-")
    return wandb_callback(project, group=info.name, mode=wandb_mode(), root=root)


def wandb_mode() -> str:
    """WANDB_MODE when set; else online when this machine has a W&B API key (WANDB_API_KEY, or the ~/.netrc entry
    `wandb login` writes), offline otherwise: nothing leaves the machine unless the user logged in, and
    `wandb sync` uploads an offline run later."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return "online" if netrc.netrc(os.environ.get("NETRC")).authenticators(host) else "offline"
    except (OSError, netrc.NetrcParseError):  # no ~/.netrc, or one W&B could not read either: no login
        return "offline"


LOGGERS: dict[str, Tracker] = {
    "mlflow": Tracker("mlflow", "mlflow", "mlflow", _mlflow,
                      "one MLflow run per trial (params, metrics per epoch, best checkpoint) in MLFLOW_TRACKING_URI, "
                      "or in the run directory's mlflow.db"),
    "wandb": Tracker("wandb", "wandb", "wandb", _wandb,
                     "one W&B run per trial, grouped by experiment; offline (files in the run directory's wandb/) "
                     "unless an API key is set"),
}


def check_loggers(names: list[str], storage: str) -> list[str]:
    """The `loggers` list, or a ValueError stating the rule it breaks (unknown, repeated, not installed, or a
    local MLflow store for a run stored at a URI)."""
    for name in names:
        if name not in LOGGERS:
            raise ValueError(f"unknown logger '{name}'; known: {', '.join(sorted(LOGGERS))}")
        problem = LOGGERS[name].missing()
        if problem:
            raise ValueError(problem)
    if len(set(names)) < len(names):
        raise ValueError("each logger may appear once")
    if "://" in storage:  # no local run directory on this machine to keep a local store in
        if "mlflow" in names and not os.environ.get(MLFLOW_URI_ENV):
            raise ValueError(f"logger 'mlflow' for a run stored at a URI needs {MLFLOW_URI_ENV} (an MLflow server): "
                             "without it the MLflow store lives in the local run directory")
        if "wandb" in names and wandb_mode() == "offline":
            raise ValueError("logger 'wandb' for a run stored at a URI needs a W&B login (WANDB_API_KEY or `wandb login`): "
                             "offline runs are files in the local run directory")
    return names


def tracker_callbacks(names: list[str], info: RunInfo) -> list:
    """The Ray Tune callbacks of the experiment's `loggers`, in their order."""
    return [LOGGERS[name].build(info) for name in names]
