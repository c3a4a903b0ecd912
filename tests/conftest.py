"""Shared fixtures: one local Ray for the whole session (2 CPUs), the tiny experiment and one finished run of it,
and a local S3 server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ctrl_c_when(proc: subprocess.Popen, ready: Callable[[], bool], wait: float = 200) -> tuple[str, str]:
    """Sends SIGINT to `proc`'s process group (what a terminal's Ctrl-C does) once `ready()` holds (or after
    `wait` seconds), and returns its stdout and stderr; a process that does not stop is killed."""
    try:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def last_rows(run_dir: Path) -> dict[str, dict]:
    """Each trial folder's latest result row so far (a row being written is skipped), by folder name."""
    import json

    out = {}
    for path in run_dir.glob("*/result.json") if run_dir.is_dir() else []:
        lines = path.read_text().splitlines()
        for line in reversed(lines):
            try:
                out[path.parent.name] = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    return out


def kill_mid_trial(run_dir: Path, victim: Callable[[dict], int | None], first: int, last: int, wait: float = 300):
    """Starts a thread that SIGKILLs a process of a trial once it has reported epoch `first` and not yet `last`:
    `victim(row)` names the process from the trial's latest row (None: not yet). Returns (thread, record); the
    record holds `trial`, `pid` and `at` (the epoch) once it has killed."""
    import threading

    killed: dict = {}

    def watch():
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for trial, row in last_rows(run_dir).items():
                if first <= row.get("training_iteration", 0) < last and (pid := victim(row)):
                    killed.update(trial=trial, pid=pid, at=row["training_iteration"])
                    os.kill(pid, signal.SIGKILL)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, killed


def kill_leftovers(tmp: str) -> None:
    """Kills Ray processes of a test cluster still alive after its shutdown (they name its private temp dir)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if tmp.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


# Fixtures that start Ray or a server (directly or through another fixture): every test that needs one is `slow`.
# ray_session (and finished_run through it), s3_server here; `cluster` (tests/test_cluster.py: a two-node Ray) and
# `head` (tests/test_jobs.py: a Ray head with the Jobs API).
SLOW_FIXTURES = {"ray_session", "s3_server", "cluster", "head"}


def pytest_collection_modifyitems(config, items):
    """Marks `slow` each test whose fixtures (their whole closure: `finished_run` brings `ray_session`) start Ray
    or a server, so that `-m "not slow"` leaves it out without every such test saying so."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_session():
    """One in-process Ray for every test that tunes; the CLI's start_ray sees it and does not start another."""
    import ray

    from orchestrator.running import cluster  # noqa: F401  (sets Ray's environment before ray.init)

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


# A small but real search: three families (mlp has its own `context`, a conditional space), HyperOpt and
# ASHA over 4 epochs, 8 trials, 2 at a time; about 15 s on 2 CPUs.
TINY_MAX_EPOCHS, TINY_CONCURRENT, TINY_TRIALS = 4, 2, 8


def tiny_config(storage: Path, **overrides) -> dict:
    """The tiny experiment as a mapping, with top-level keys replaced by `overrides`."""
    config = {
        "name": "tiny",
        "task": {"kind": "charlm", "max_chars": 20000, "seq_len": 32},
        "search_space": {
            "families": {
                "lstm": {"hidden_size": {"choice": [16, 32]}},
                "gru": {"hidden_size": {"choice": [16, 32]}},
                "mlp": {"hidden_size": {"choice": [32, 64]}, "context": {"choice": [4, 8]}},
            },
            "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}, "batch_size": 32},
        },
        "searcher": "hyperopt",
        "scheduler": {"kind": "asha", "max_epochs": TINY_MAX_EPOCHS, "grace_period": 1, "reduction_factor": 2},
        "num_samples": TINY_TRIALS,
        "max_concurrent": TINY_CONCURRENT,
        "checkpoint": {"keep": 2},
        "storage": str(storage),
        "seed": 0,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def finished_run(ray_session, tmp_path_factory) -> Path:
    """One finished tiny run through the CLI, shared read-only by every test that inspects a run
    (end to end, report, TensorBoard server); a test that alters a run works on a copy."""
    import yaml

    from orchestrator.cli import main

    root = tmp_path_factory.mktemp("finished")
    path = root / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_config(root / "runs"), sort_keys=False))
    assert main(["run", str(path)]) == 0
    return root / "runs" / "tiny"


@pytest.fixture
def s3_server(tmp_path):
    """An S3-protocol server on loopback (moto) with one bucket; yields the environment that points clients at it."""
    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # boto3, pyarrow's S3 client and Ray's workers all read these (AWS_ENDPOINT_URL: the server instead of AWS).
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", RAY_TMPDIR=tempfile.mkdtemp(prefix="rs", dir="/tmp"),
               TMPDIR=str(tmp_path))  # the driver's local mirror of the run lands here, not in /tmp
    env.pop("RAY_ADDRESS", None)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="test",
                             aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket="runs-bucket")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)
        kill_leftovers(env["RAY_TMPDIR"])
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
