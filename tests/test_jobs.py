"""`orchestrator submit` through Ray's Jobs API, against a real local head node started with `ray start --head`
(dashboard on loopback, token authentication on, as cluster.yaml sets it up).

The head runs in its own process group with a private Ray temp dir and token, so neither the session's
local Ray nor any other Ray on the machine is touched; it is stopped even when a test fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import free_port, kill_leftovers

from orchestrator.reading import results as R

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}






@pytest.fixture(scope="module")
def head():
    """A Ray head with the dashboard (Jobs API) on 127.0.0.1 and token auth; yields (dashboard URL, client env)."""
    tmp = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths live under it
    env = dict(os.environ, RAY_TMPDIR=tmp, TMPDIR=tmp,  # TMPDIR: the jobs' local mirrors of their runs go there too
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
               # the job's `python` must be this environment's, as the venv on PATH is on a cluster node
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    ray_cli = str(Path(sys.executable).parent / "ray")
    proc = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", "--port", str(free_port()), "--dashboard-host", "127.0.0.1",
         "--dashboard-port", str(dashboard), "--num-cpus", "2", "--object-store-memory", "200000000",
         "--include-dashboard", "true", "--disable-usage-stats",
         # the Jobs API runs in the node's agent; its default port belongs to whichever Ray took it first
         "--dashboard-agent-listen-port", str(free_port())],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        wait_for_jobs_api(url, env, proc)
        yield url, env
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        kill_leftovers(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def wait_for_jobs_api(url: str, env: dict, proc, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the Ray head exited while starting")
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # 401 without a token: the server is up
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no Jobs API at {url} after {timeout:.0f} s")


def client_for(url: str, env: dict):
    """A JobSubmissionClient that shows the test head's token (explicitly: this process may hold another one)."""
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(url, headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})


def submit(args: list[str], env: dict, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", "submit", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def job_id_of(output: str) -> str:
    return output.split("Submitted job ", 1)[1].split()[0]


JOB_MODELS = """
from torch import nn


class Causal(nn.Module):
    \"\"\"Predicts each next character from the current one alone.\"\"\"

    def __init__(self, spec, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Embedding(spec.in_features, width), nn.Linear(width, spec.out_features))

    def forward(self, x):  # (B, T) -> (B, T, V)
        return self.net(x)
"""


@pytest.fixture
def project(tmp_path):
    """A user's project directory: an experiment file (what gets shipped) and a storage place outside it."""
    config = {
        "name": "jobrun",
        "task": {"kind": "charlm", "max_chars": 20000, "seq_len": 32, "steps_per_epoch": 10},
        # A built-in family and one of the user's (job_models.py, shipped with the directory): one trial each.
        "search_space": {"families": {"gru": {"hidden_size": {"choice": [16, 32]}}, "causal": {"model": "job_models.py:Causal"}},
                         "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}},
        "searcher": "grid",
        "scheduler": {"kind": "fifo", "max_epochs": 2},
        "num_samples": 1,
        "resources": {"cpu": 1},
        "seed": 0,
    }
    work = tmp_path / "project"
    work.mkdir()
    (work / "job_models.py").write_text(JOB_MODELS)
    (work / "exp.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work


@pytest.mark.timeout(240)
def test_submit_streams_logs_and_propagates_success(head, project, tmp_path):
    url, env = head
    store = f"file://{tmp_path / 'store'}"  # a URI: the same pyarrow path as s3:// and gs://
    done = submit(["exp.yaml", "--address", url, "--storage", store], env, project)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = job_id_of(done.stdout)
    # The logs streamed here are the run's own output, summary included.
    for expected in ("Experiment jobrun", "Done in", "Best trial", f"Stored at:      {store}/jobrun", f"Job {job_id} succeeded"):
        assert expected in done.stdout, expected
    client = client_for(url, env)
    assert str(client.get_job_status(job_id)).endswith("SUCCEEDED")
    assert "Best trial" in client.get_job_logs(job_id)
    assert client.get_job_info(job_id).entrypoint.startswith("python -m orchestrator run exp.yaml --address auto")

    run_dir = tmp_path / "store" / "jobrun"
    import importlib.util

    from trainables import load_model

    spec = importlib.util.spec_from_file_location("job_models", project / "job_models.py")
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    assert load_model(str(run_dir / R.BEST_DIR / R.MODEL_FILE), model_class=user.Causal) is not None
    trials = R.load_trials(run_dir)
    assert len(trials) == 2 and all(list(t.path.glob("events.out.tfevents.*")) for t in trials)
    assert {t.family for t in trials} == {"gru", "causal"} and not any(t.error for t in trials), "the user's file reached the job"
    assert R.read_experiment(run_dir)["storage"] == store


@pytest.mark.timeout(120)
def test_failed_job_exit_status_comes_back(head, project, tmp_path):
    """A run the cluster rejects (a GPU this head does not have) fails the job; its exit status 2 is ours."""
    url, env = head
    done = submit(["exp.yaml", "--address", url, "--storage", str(tmp_path / "store"), "--set", "resources.gpu=1"], env, project, timeout=100)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no node has that much" in done.stdout  # the driver's own error, streamed from the cluster
    assert f"Job {job_id_of(done.stdout)} failed: " in done.stderr


@pytest.mark.timeout(120)
def test_ctrl_c_detaches_and_leaves_the_job_running(head, project, tmp_path):
    url, env = head
    # A job that outlasts the Ctrl-C by far (the test stops it itself): the tiny one can end before the signal lands.
    config = yaml.safe_load((project / "exp.yaml").read_text())
    (project / "exp.yaml").write_text(yaml.safe_dump({**config, "scheduler": {"kind": "fifo", "max_epochs": 500}}, sort_keys=False))
    # SIGINT at its default in the child, as a shell starts a command: a process started while SIGINT is ignored (the
    # test runner's state after earlier tests) would inherit that, and Python then ignores Ctrl-C for good.
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "submit", "exp.yaml", "--address", url, "--storage", str(tmp_path / "store")],
                            env=env, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    for line in proc.stdout:  # wait until the job runs and its log streams here
        seen += line
        if "Running entrypoint" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    job_id = job_id_of(seen)
    assert proc.returncode == 130, seen + out + err
    assert f"job {job_id} keeps running" in err
    assert f"ray job logs -f {job_id} --address {url}" in err and f"ray job stop {job_id} --address {url}" in err
    client = client_for(url, env)
    assert str(client.get_job_status(job_id)).split(".")[-1] not in TERMINAL
    client.stop_job(job_id)  # what the printed `ray job stop` does
    deadline = time.monotonic() + 60
    while str(client.get_job_status(job_id)).split(".")[-1] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
    assert str(client.get_job_status(job_id)).endswith("STOPPED")


@pytest.mark.timeout(60)
def test_without_the_token_the_cluster_refuses_with_a_clear_error(head, project):
    url, env = head
    no_token = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    done = submit(["exp.yaml", "--address", url, "--storage", "/tmp/unused"], no_token, project, timeout=50)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: --address {url}: cannot use the Jobs API there")
    assert "RAY_AUTH_MODE=token" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["exp.yaml"], "storage 'runs': a relative path would put the results inside the job's temporary working directory"),
    (["../outside.yaml", "--storage", "/tmp/x"], "is outside the current directory"),
    (["exp.yaml", "--storage", "/tmp/x", "--set", "num_samples=0"], "num_samples"),
    (["exp.yaml", "--storage", "/tmp/x", "--set", "task={kind: custom, loader: ../outside.py:load}", "--set", "search_space=custom",
      "--set", "searcher=random"],
     "task.loader's file is outside the current directory"),
    (["model_outside.yaml", "--storage", "/tmp/x"], "job_models.py: the model file is outside the current directory"),
])
def test_bad_submissions_fail_before_anything_is_shipped(project, args, message):
    """Checked here, exit 2, no cluster contacted (the address is never dialled)."""
    (project.parent / "outside.yaml").write_text((project / "exp.yaml").read_text())
    (project.parent / "job_models.py").write_text(JOB_MODELS)  # beside outside.yaml, which names it
    (project / "model_outside.yaml").write_text((project / "exp.yaml").read_text().replace("job_models.py:", "../job_models.py:"))
    done = submit([*args, "--address", "http://127.0.0.1:9"], dict(os.environ), project, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
