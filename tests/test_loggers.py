"""`loggers: [mlflow, wandb]`: one small run with both trackers, read back with each tracker's own client.

MLflow through `MlflowClient.search_runs` / `get_metric_history` / artifacts on the run's local store; W&B
through its offline run files (the `.wandb` transaction log W&B's `wandb sync` uploads), parsed with W&B's
own protobuf records. No API key and no server: nothing leaves the machine.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest
from conftest import tiny_config

from orchestrator.cli import main
from orchestrator.reading import results as R
from orchestrator.watch.trackers import LOGGERS, wandb_mode
from trainables import constants as C

TRIALS, EPOCHS = 2, 2


@pytest.fixture(scope="module")
def tracked_run(ray_session, tmp_path_factory) -> Path:
    """A finished tiny run with both trackers, their local stores in the run directory."""
    import yaml

    mp = pytest.MonkeyPatch()
    for var in ("MLFLOW_TRACKING_URI", "WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT"):
        mp.delenv(var, raising=False)
    root = tmp_path_factory.mktemp("tracked")
    mp.setenv("NETRC", str(root / "no-netrc"))  # no `wandb login` of this machine's user is seen
    config = tiny_config(root / "runs", num_samples=TRIALS, loggers=["mlflow", "wandb"],
                         scheduler={"kind": "fifo", "max_epochs": EPOCHS})
    (root / "exp.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        assert wandb_mode() == "offline"
        assert main(["run", str(root / "exp.yaml")]) == 0
    finally:
        mp.undo()
    return root / "runs" / "tiny"


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")  # inside MLflow's own SQL store
def test_mlflow_has_one_run_per_trial_with_params_metrics_and_best_checkpoint(tracked_run, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tracked_run / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = {r.data.tags["trial_id"]: r for r in client.search_runs([experiment.experiment_id])}
    trials = {t.trial_id: t for t in R.load_trials(tracked_run)}
    assert set(runs) == set(trials) and len(runs) == TRIALS
    for trial_id, run in runs.items():
        trial = trials[trial_id]
        assert run.info.status == "FINISHED" and run.info.run_name == f"{trial.family}_{trial_id}"
        assert run.data.params == {k: str(v) for k, v in trial.hparams().items()}
        for key in (C.BPC, C.TRAIN_LOSS, C.VAL_LOSS):
            history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            assert history == [(r["training_iteration"], r[key]) for r in trial.rows], key
        assert "config/lr" not in run.data.metrics and "done" not in run.data.metrics
        local = Path(client.download_artifacts(run.info.run_id, "best_checkpoint", str(tmp_path / trial_id)))
        assert (local / C.STATE_FILE).is_file()
        assert json.loads((local / C.META_FILE).read_text())["value"] == trial.best(C.BPC, "min")


def wandb_records(path: Path):
    """The records of a W&B run file: W&B's 7-byte header, then LevelDB's log format (32 KiB blocks of chunks,
    each with a 7-byte header: checksum, length, type) around W&B's protobuf `Record` messages."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        body, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = body if kind in (1, 2) else pending + body  # full or first chunk starts a record
        if kind in (1, 4):  # full or last chunk ends it
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_runs_hold_each_trials_config_and_history(tracked_run):
    trials = {t.trial_id: t for t in R.load_trials(tracked_run)}
    files = {p.parent.name.rsplit("-", 1)[-1]: p for p in (tracked_run / "wandb").glob("offline-run-*/run-*.wandb")}
    assert set(files) == set(trials)
    for trial_id, path in files.items():
        trial, history, config, updates, group = trials[trial_id], {}, None, {}, None
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
                group, project = record.run.run_group, record.run.project
            elif kind == "config":
                updates.update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                history[items["training_iteration"]] = items
        assert group == "tiny" and project == "orchestrator"
        assert {k: config[k] for k in trial.hparams()} == trial.hparams()
        assert "arch" not in config and "arch" not in updates, "the flat hyperparameters only, not the nested Tune config"
        assert sorted(history) == [r["training_iteration"] for r in trial.rows]
        assert [history[r["training_iteration"]][C.BPC] for r in trial.rows] == [r[C.BPC] for r in trial.rows]


def test_an_unknown_or_missing_tracker_is_exit_2_naming_the_extra(tmp_path, capsys, monkeypatch):
    import yaml

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "runs", loggers=["mlfow"])))
    assert main(["validate", str(path)]) == 2
    assert "key 'loggers': value ['mlfow']: unknown logger 'mlfow'; known: mlflow, wandb" in capsys.readouterr().err
    # A tracker whose package is missing (a record naming a module that does not exist): the message names the extra.
    monkeypatch.setitem(LOGGERS, "wandb", dataclasses.replace(LOGGERS["wandb"], module="wandb_is_not_installed"))
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "runs", loggers=["wandb"])))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
    assert "key 'loggers': value ['wandb']: logger 'wandb' needs the wandb_is_not_installed package" in err
    assert "pip install -c constraints.txt -e '.[wandb]'" in err

    # A run stored at a URI has no local run directory for MLflow's local store.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path.write_text(yaml.safe_dump(tiny_config("s3://bucket/runs", loggers=["mlflow"])))
    assert main(["validate", str(path)]) == 2
    assert "key 'loggers': value ['mlflow']: logger 'mlflow' for a run stored at a URI needs MLFLOW_TRACKING_URI" in capsys.readouterr().err


# ---- the trackers' settings, checked before Ray starts -------------------------------------------------------

TRACKER_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE", "WANDB_API_KEY", "WANDB_MODE", "WANDB_SETUP_API_KEY_HOOK")


@pytest.fixture
def no_tracker_settings(monkeypatch, tmp_path):
    """No tracker variable set and no `wandb login` of this machine's user seen."""
    for var in TRACKER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


def run_tiny(tmp_path, capsys, loggers: list[str], command: str = "run") -> tuple[int, str]:
    """`orchestrator run` (or `validate`) of the tiny experiment with `loggers`: (exit status, stderr). A refused
    run must be refused before Ray starts (here Ray's start fails the test instead) and write nothing."""
    import yaml

    from orchestrator.running import cluster

    def no_ray(*args, **kwargs):
        raise AssertionError("the run got as far as starting Ray")

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "runs", loggers=loggers)))
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cluster, "start_ray", no_ray)
        code = main([command, str(path)])
    err = capsys.readouterr().err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert not (tmp_path / "runs").exists(), "a refused run must write nothing"
    return code, err


def silent_server():
    """A TCP port on 127.0.0.1 that accepts connections and never answers (closed by the caller)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def answering_server():
    """An HTTP server on 127.0.0.1 that answers every request (404: an answer all the same), in a thread."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


FILE_STORE_REFUSED = ("MLflow 3 refuses file stores; set it to sqlite:///path/mlflow.db or an http(s):// server, "
                      "or unset it to keep the store in the run directory")


@pytest.mark.parametrize("uri,needle", [
    ("file:///tmp/mlruns", f"MLFLOW_TRACKING_URI=file:///tmp/mlruns: {FILE_STORE_REFUSED}"),
    ("mlruns", f"MLFLOW_TRACKING_URI=mlruns: {FILE_STORE_REFUSED}"),  # a path is a file store too
    ("http://127.0.0.1:{free}", ("MLFLOW_TRACKING_URI=http://127.0.0.1:{free}: no MLflow server answers there (Connection "
                                 "refused); start the server, or set it to one that answers or to sqlite:///path/mlflow.db, or unset it")),
    ("http://127.0.0.1:{silent}", "no MLflow server answers there (no answer within 2 s)"),
    ("s3://bucket/mlflow", "MLFLOW_TRACKING_URI=s3://bucket/mlflow: MLflow keeps no runs at 's3:' URIs"),
])
def test_an_mlflow_uri_mlflow_would_refuse_is_exit_2_before_ray_starts(uri, needle, tmp_path, capsys, no_tracker_settings):
    import time

    from conftest import free_port

    silent = silent_server()
    try:
        values = {"free": free_port(), "silent": silent.getsockname()[1]}
        no_tracker_settings.setenv("MLFLOW_TRACKING_URI", uri.format(**values))
        began = time.monotonic()
        code, err = run_tiny(tmp_path, capsys, ["mlflow"])
    finally:
        silent.close()
    assert code == 2 and "key 'loggers': value ['mlflow']: MLFLOW_TRACKING_URI=" in err and needle.format(**values) in err, err
    assert time.monotonic() - began < 10, "a server that does not answer is given about 2 s"


def test_mlflow_uris_mlflow_takes_validate(tmp_path, capsys, no_tracker_settings):
    server = answering_server()
    try:
        for uri in (f"sqlite:///{tmp_path / 'm.db'}", f"http://127.0.0.1:{server.server_port}/"):
            no_tracker_settings.setenv("MLFLOW_TRACKING_URI", uri)
            assert run_tiny(tmp_path, capsys, ["mlflow"], "validate") == (0, ""), uri
    finally:
        server.shutdown()
    # MLflow's own opt-out of its refusal of file stores.
    no_tracker_settings.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    no_tracker_settings.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert run_tiny(tmp_path, capsys, ["mlflow"], "validate") == (0, "")
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "mlruns").exists(), "the check writes nothing"


def test_wandb_online_without_an_api_key_is_exit_2_before_ray_starts(tmp_path, capsys, no_tracker_settings):
    no_tracker_settings.setenv("WANDB_MODE", "online")
    code, err = run_tiny(tmp_path, capsys, ["wandb"])
    assert code == 2 and ("key 'loggers': value ['wandb']: WANDB_MODE=online needs a W&B API key, and this machine has none: "
                          "set WANDB_API_KEY or run `wandb login`, or set WANDB_MODE=offline to keep the runs in the run "
                          "directory (`wandb sync` uploads them later)") in err, err
    # A key in the environment, or the ~/.netrc entry `wandb login` writes: online it is.
    no_tracker_settings.setenv("WANDB_API_KEY", "x" * 40)
    assert run_tiny(tmp_path, capsys, ["wandb"], "validate") == (0, "")
    no_tracker_settings.delenv("WANDB_API_KEY")
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    (tmp_path / "netrc").chmod(0o600)
    no_tracker_settings.setenv("NETRC", str(tmp_path / "netrc"))
    assert run_tiny(tmp_path, capsys, ["wandb"], "validate") == (0, "")


def test_the_settings_check_stays_light_and_skips_an_export(tmp_path, no_tracker_settings):
    """Validating `loggers: [mlflow, wandb]` imports neither tracker (fresh interpreter); an export, which logs to
    no tracker, does not check their settings."""
    import subprocess
    import sys

    from orchestrator.experiment.config import parse_config

    code = ("import os, sys; from orchestrator.experiment.config import parse_config; from orchestrator.errors import UserError\n"
            f"raw = {tiny_config(tmp_path / 'runs', loggers=['mlflow', 'wandb'])!r}\n"
            "try:\n    parse_config(raw, 'x')\nexcept UserError as e:\n    print(e)\n"
            f"os.environ.update(MLFLOW_TRACKING_URI='sqlite:///{tmp_path}/m.db', WANDB_MODE='offline')\n"
            "print(parse_config(raw, 'x').loggers)\n"
            "print(sorted(m for m in ('mlflow', 'wandb', 'ray') if m in sys.modules))")
    env = {**__import__("os").environ, "MLFLOW_TRACKING_URI": "file:///tmp/mlruns"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False).stdout
    assert "MLflow 3 refuses file stores" in out and out.strip().endswith("['mlflow', 'wandb']\n[]"), out
    no_tracker_settings.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")
    no_tracker_settings.setenv("WANDB_MODE", "online")
    raw = tiny_config(tmp_path / "runs", loggers=["mlflow", "wandb"])
    assert parse_config(raw, "x", trackers=False).loggers == ["mlflow", "wandb"]
