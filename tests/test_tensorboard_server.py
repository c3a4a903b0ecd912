"""The real TensorBoard server, started by `orchestrator tensorboard` over a finished run, queried through its HTTP data API.

Checks what a user sees: every trial's scalar curves, the HParams dashboard's sessions (hyperparameters,
the model family included, and metrics), and the experiment-level stream (best so far, trials running).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY_CONCURRENT, TINY_TRIALS, free_port

from orchestrator.reading import results as R
from orchestrator.watch.tensorboard import EXPERIMENT_DIR, best_key, experiment_tag
from trainables import constants as C

REPO = Path(__file__).resolve().parent.parent
CONCURRENT = TINY_CONCURRENT
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


@pytest.fixture(scope="module")
def run_dir(finished_run) -> Path:
    """The session's finished tiny run (conftest): three families, mlp with its own `context` hyperparameter."""
    return finished_run




def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def server(run_dir):
    """`orchestrator tensorboard RUN --port P`, polled until it has loaded every run; stopped with its process group."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "tensorboard", str(run_dir), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    expected = {t.path.name for t in R.load_trials(run_dir)} | {EXPERIMENT_DIR}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if expected <= set(get(f"{base}/data/runs")):
                    break
            except OSError:
                pass  # not listening yet
            if proc.poll() is not None:
                pytest.fail(f"TensorBoard exited: {proc.stdout.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"TensorBoard did not serve {sorted(expected)} within 90 s")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def scalars(base: str, run: str, tag: str) -> list[tuple[int, float]]:
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    return [(step, value) for _, step, value in get(f"{base}/data/plugin/scalars/scalars?{query}")]


@pytest.mark.timeout(300)
def test_every_trial_curve_is_served(run_dir, server):
    tags = get(f"{server}/data/plugin/scalars/tags")
    trials = R.load_trials(run_dir)
    assert len(trials) == TINY_TRIALS
    for t in trials:
        run = t.path.name
        assert {C.BPC, best_key(C.BPC), *C.CURVE_KEYS} <= set(tags[run]), run
        for key in (C.BPC, C.TRAIN_LOSS, C.VAL_LOSS):
            served = scalars(server, run, key)
            assert [s for s, _ in served] == [r["training_iteration"] for r in t.rows]
            assert [v for _, v in served] == pytest.approx([r[key] for r in t.rows], rel=1e-6)  # stored as float32
        best = scalars(server, run, best_key(C.BPC))
        assert best[-1][1] == pytest.approx(t.best(C.BPC, "min"), rel=1e-6)


@pytest.mark.timeout(120)
def test_hparams_dashboard_has_a_session_per_trial_with_family_and_metrics(run_dir, server):
    experiment = post(f"{server}/data/plugin/hparams/experiment", {"experimentName": "", "includeMetrics": True})
    columns = {h["name"] for h in experiment["hparamInfos"]}
    trials = R.load_trials(run_dir)
    assert {"family", "lr", "model/hidden_size", "model/context"} <= columns  # the union of every family's names
    assert all(set(t.hparams()) <= columns for t in trials)
    assert {C.BPC, best_key(C.BPC)} <= {m["name"]["tag"] for m in experiment["metricInfos"]}

    groups = post(f"{server}/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ALL_STATUSES, "colParams": [], "startIndex": 0, "sliceSize": 100,
        "includeMetrics": True,
    })
    sessions = {s["name"]: (g, s) for g in groups["sessionGroups"] for s in g["sessions"]}
    assert set(sessions) == {t.path.name for t in trials}
    for t in trials:
        group, session = sessions[t.path.name]
        assert session["status"] == "STATUS_SUCCESS"
        hp = t.hparams()
        assert group["hparams"]["family"] == t.family == hp["family"]
        assert group["hparams"]["lr"] == pytest.approx(hp["lr"])
        assert group["hparams"]["model/hidden_size"] == hp["model/hidden_size"]
        metrics = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
        assert metrics[C.BPC] == pytest.approx(t.rows[-1][C.BPC], rel=1e-6)
        assert metrics[best_key(C.BPC)] == pytest.approx(t.best(C.BPC, "min"), rel=1e-6)


@pytest.mark.timeout(120)
def test_experiment_stream_shows_best_so_far_and_trials_running(run_dir, server):
    tags = get(f"{server}/data/plugin/scalars/tags")[EXPERIMENT_DIR]
    names = [experiment_tag(n) for n in (best_key(C.BPC), "trials_running", "trials_completed", "trials_failed")]
    assert set(names) <= set(tags)
    trials = R.load_trials(run_dir)
    best = scalars(server, EXPERIMENT_DIR, names[0])
    values = [v for _, v in best]
    assert all(b < a for a, b in zip(values, values[1:])), "best so far only improves"
    assert values[-1] == pytest.approx(min(t.best(C.BPC, "min") for t in trials), rel=1e-6)
    running = scalars(server, EXPERIMENT_DIR, names[1])
    assert all(0 <= v <= CONCURRENT for _, v in running) and max(v for _, v in running) >= 1 and running[-1][1] == 0
    assert scalars(server, EXPERIMENT_DIR, names[2])[-1][1] == len(trials)
    steps = [s for s, _ in running]
    assert steps == sorted(steps), "the step is seconds since the experiment started"
