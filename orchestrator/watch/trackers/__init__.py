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
WANDB_OFFLINE = ("offline", "dryrun", "disabled")  # W&B's modes that send nothing (and need no API key)
SERVER_TIMEOUT_S = 2.0  # how long the check before Ray starts waits for an MLflow server to answer
MLFLOW_DATABASES = ("postgresql", "mysql", "sqlite", "mssql")  # mlflow/store/db/db_types.py DATABASE_ENGINES
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
    """WANDB_MODE when set; else online when this machine has a W&B API key (`wandb_login`), offline otherwise:
    nothing leaves the machine unless the user logged in, and `wandb sync` uploads an offline run later."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if wandb_login() else "offline"


def wandb_login() -> bool:
    """Whether this machine has a W&B API key: WANDB_API_KEY, the ~/.netrc entry `wandb login` writes, or the hook
    Ray's callback asks for one (WANDB_SETUP_API_KEY_HOOK)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_SETUP_API_KEY_HOOK"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return bool(netrc.netrc(os.environ.get("NETRC")).authenticators(host))
    except (OSError, netrc.NetrcParseError):  # no ~/.netrc, or one W&B could not read either: no login
        return False


LOGGERS: dict[str, Tracker] = {
    "mlflow": Tracker("mlflow", "mlflow", "mlflow", _mlflow,
                      "one MLflow run per trial (params, metrics per epoch, best checkpoint) in MLFLOW_TRACKING_URI, "
                      "or in the run directory's mlflow.db"),
    "wandb": Tracker("wandb", "wandb", "wandb", _wandb,
                     "one W&B run per trial, grouped by experiment; offline (files in the run directory's wandb/) "
                     "unless an API key is set"),
}


def check_loggers(names: list[str], storage: str, *, environment: bool = True) -> list[str]:
    """The `loggers` list, or a ValueError stating the rule it breaks: unknown, repeated, not installed; and with
    `environment` (a run about to start, not an export of an old one) what the trackers would refuse once Ray has
    started: a local store for a run stored at a URI, an MLFLOW_TRACKING_URI MLflow refuses or where no server
    answers, W&B online without an API key."""
    for name in names:
        if name not in LOGGERS:
            raise ValueError(f"unknown logger '{name}'; known: {', '.join(sorted(LOGGERS))}")
        problem = LOGGERS[name].missing()
        if problem:
            raise ValueError(problem)
    if len(set(names)) < len(names):
        raise ValueError("each logger may appear once")
    if not environment:
        return names
    remote = "://" in storage  # no local run directory on this machine to keep a local store in
    if remote:
        if "mlflow" in names and not os.environ.get(MLFLOW_URI_ENV):
            raise ValueError(f"logger 'mlflow' for a run stored at a URI needs {MLFLOW_URI_ENV} (an MLflow server): "
                             "without it the MLflow store lives in the local run directory")
        if "wandb" in names and wandb_mode() == "offline":
            raise ValueError("logger 'wandb' for a run stored at a URI needs a W&B login (WANDB_API_KEY or `wandb login`): "
                             "offline runs are files in the local run directory")
    if "mlflow" in names and os.environ.get(MLFLOW_URI_ENV):
        problem = mlflow_uri_problem(os.environ[MLFLOW_URI_ENV])
        if problem:
            unset = "" if remote else ", or unset it to keep the store in the run directory"
            raise ValueError(f"{MLFLOW_URI_ENV}={os.environ[MLFLOW_URI_ENV]}: {problem}{unset}")
    if "wandb" in names and wandb_mode() not in WANDB_OFFLINE and not wandb_login():
        offline = "" if remote else ", or set WANDB_MODE=offline to keep the runs in the run directory (`wandb sync` uploads them later)"
        raise ValueError(f"WANDB_MODE={wandb_mode()} needs a W&B API key, and this machine has none: set WANDB_API_KEY "
                         f"or run `wandb login`{offline}")
    return names


def mlflow_uri_problem(uri: str) -> str | None:
    """Why MLflow would refuse the tracking URI `uri` once the run has started (in Ray's callback, after Ray
    started), or None. Follows MLflow's tracking store registry (`_register_tracking_stores` in
    mlflow/tracking/_tracking_service/utils.py, schemes read with mlflow.utils.uri.get_uri_scheme): a path or
    `file:` is its FileStore, which MLflow 3 refuses unless MLFLOW_ALLOW_FILE_STORE is true
    (mlflow/store/tracking/file_store.py); `http(s)` a server, which must answer here within SERVER_TIMEOUT_S;
    the SQLAlchemy databases and `databricks` are taken as they are; Unity Catalog (`uc`, `databricks-uc`) is
    refused; any other scheme only through a plugin, for which MLflow's registry itself is asked (importing
    mlflow, the one case that does)."""
    scheme = urlparse(uri).scheme.lower()
    scheme = "" if len(scheme) == 1 else scheme  # a Windows drive (C:\...): a path, as MLflow reads it
    if scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("true", "1"):
            return None
        return "MLflow 3 refuses file stores; set it to sqlite:///path/mlflow.db or an http(s):// server"
    if scheme in ("http", "https"):
        why = server_unanswered(uri)
        return None if why is None else (f"no MLflow server answers there ({why}); start the server, or set it to one "
                                          "that answers or to sqlite:///path/mlflow.db")
    if scheme == "databricks" or scheme.startswith(MLFLOW_DATABASES):
        return None
    if scheme not in ("uc", "databricks-uc"):
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        if scheme in _tracking_store_registry._registry:  # a plugin's store
            return None
    return (f"MLflow keeps no runs at '{scheme}:' URIs; set it to sqlite:///path/mlflow.db, a database "
            "(postgresql://, mysql://, mssql://) or an http(s):// server")


def server_unanswered(url: str) -> str | None:
    """Why nothing answers at the http(s) `url` within SERVER_TIMEOUT_S (refused, timed out, unknown host), or
    None. Any HTTP answer counts, an error status included; so does a TLS handshake (its certificate is MLflow's
    to judge). The proxy settings MLflow's requests would use apply here too."""
    import ssl
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=SERVER_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return None
        reason = exc.reason
    except (OSError, ValueError) as exc:  # a timeout while reading the answer, a URL without a host
        reason = exc
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {SERVER_TIMEOUT_S:g} s"
    return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__


def tracker_callbacks(names: list[str], info: RunInfo) -> list:
    """The Ray Tune callbacks of the experiment's `loggers`, in their order."""
    return [LOGGERS[name].build(info) for name in names]
