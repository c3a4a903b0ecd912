"""The cluster path: cluster.yaml against Ray's own validator, and a real multi-node Ray cluster on this machine
(a head and a second node, each declaring one logical GPU) running an experiment with fractional GPUs through
`orchestrator run --address`.

The cluster lives in a subprocess with its own Ray temp dir and token, so the session's local Ray (the
`ray_session` fixture) and any other Ray on the machine are never touched; it is shut down even when a test fails.
Without CUDA the trials train on the CPU while Ray still schedules them by GPU: the GPU ids Ray assigned each
trial (its CUDA_VISIBLE_DEVICES) are what the packing checks read.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import ctrl_c_when, kill_leftovers

from orchestrator.reading import results as R
from orchestrator.running.cluster import (
    capacity_verdict,
    node_types_from_autoscaler,
    workers_fit,
)
from trainables import constants as C

REPO = Path(__file__).resolve().parent.parent
NODE_GPUS = 1  # logical GPUs declared by each of the two nodes
GPU_PER_TRIAL = 0.5

# Runs in the subprocess: a head and one more node, then waits until its stdin closes (or SIGTERM).
CLUSTER_SCRIPT = f"""
import json, signal, socket, sys
from ray.cluster_utils import Cluster
mem = 80 * 1024 * 1024  # small object stores: two nodes on one machine must not claim 30% of RAM each
with socket.socket() as s:  # the head's agent port: its default belongs to whichever Ray took it first
    s.bind(("127.0.0.1", 0))
    agent_port = s.getsockname()[1]
cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, num_gpus={NODE_GPUS}, object_store_memory=mem,
                                                            include_dashboard=False, dashboard_agent_listen_port=agent_port))
try:
    cluster.add_node(num_cpus=1, num_gpus={NODE_GPUS}, object_store_memory=mem)
    cluster.wait_for_nodes()
    print(json.dumps({{"address": cluster.address}}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdin.read()
finally:
    cluster.shutdown()
"""


def cluster_yaml() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_validator():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = cluster_yaml()
    config = prepare_config(copy.deepcopy(raw))  # merges the provider's defaults, as `ray up` does
    validate_config(config)  # the JSON schema shipped inside the ray package, plus its own checks
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["resources"]["GPU"] >= 2 and workers["min_workers"] == 0 and workers["max_workers"] >= 1
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    # Dashboard and Jobs API only on the head's loopback: reached through `ray dashboard` (SSH), never opened.
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    assert all("RAY_AUTH_MODE=token" in " ".join(c) for c in (config["head_start_ray_commands"], config["worker_start_ray_commands"]))
    setup = " ".join(config["setup_commands"])
    assert "constraints.txt" in setup and "torch-orchestrator" in setup


def test_autoscaling_capacity_of_cluster_yaml():
    """What `check_capacity` decides on the cluster that cluster.yaml describes, right after `ray up` (head only)."""
    from ray.autoscaler._private.util import prepare_config

    types = node_types_from_autoscaler(prepare_config(cluster_yaml()))
    assert set(types) == {"gpu_worker"}  # the head is not a type the autoscaler adds
    head_only = [{"CPU": 0.0}]
    assert capacity_verdict({"CPU": 1, "GPU": 0.25}, head_only, types) == ("wait", "gpu_worker")
    assert capacity_verdict({"CPU": 4, "GPU": 4}, head_only, types) == ("wait", "gpu_worker")
    assert capacity_verdict({"CPU": 1, "GPU": 8}, head_only, types) == ("never", None)
    assert capacity_verdict({"CPU": 1, "GPU": 8}, head_only, None) == ("never", None)
    assert capacity_verdict({"CPU": 1, "GPU": 0.5}, [{"CPU": 8.0, "GPU": 1.0}], None) == ("fits", None)

    # A 4-worker trial of whole GPUs fits one 4-GPU node; the pool's 16 GPUs hold 16 such workers, not 20.
    assert workers_fit({"CPU": 12, "GPU": 1}, 4, head_only, types)
    assert workers_fit({"CPU": 12, "GPU": 1}, 16, head_only, types)
    assert not workers_fit({"CPU": 12, "GPU": 1}, 20, head_only, types)
    assert not workers_fit({"CPU": 1, "GPU": 0}, 3, [{"CPU": 2.0}], None) and workers_fit({"CPU": 1, "GPU": 0}, 2, [{"CPU": 2.0}], None)


@pytest.fixture(scope="module")
def cluster():
    """A two-node Ray cluster with token auth, in its own process group and temp dir; yields (address, env)."""
    tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths live under it
    env = dict(os.environ, RAY_TMPDIR=tmp, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER_SCRIPT], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        if not line:
            pytest.fail("the test cluster did not start")
        yield json.loads(line)["address"], env
    finally:
        proc.stdin.close()  # the script shuts the cluster down when its stdin closes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        kill_leftovers(tmp)
        shutil.rmtree(tmp, ignore_errors=True)




def cli(args: list[str], env: dict, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def packed_experiment(tmp_path):
    """Four trials, each with half a GPU: two fit on a node at once, so both nodes are needed. A trial lasts
    seconds, longer than a worker takes to start on the second node: with trials shorter than that, Tune
    hands every trial to the head node's first two workers as they come free, and the second node idles."""
    config = {
        "name": "packed",
        "task": {"kind": "charlm", "max_chars": 160000, "seq_len": 32, "steps_per_epoch": 120},
        "search_space": {
            "families": {"gru": {"hidden_size": {"choice": [16, 32]}}, "mlp": {"hidden_size": {"choice": [32, 64]}, "context": {"choice": [4, 8]}}},
            "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}, "batch_size": 32},
        },
        "searcher": "random",
        "scheduler": {"kind": "fifo", "max_epochs": 3},
        "num_samples": 4,
        "resources": {"cpu": 0.5, "gpu": GPU_PER_TRIAL},
        "storage": str(tmp_path / "runs"),
        "seed": 0,
    }
    path = tmp_path / "packed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def trial_spans(trials) -> list[tuple[float, float, str, list[str]]]:
    """(start, end, node id, GPU ids) of each trial, from its epochs' exact end times and durations."""
    spans = []
    for t in trials:
        start = min(r["timestamp"] - r["time_this_iter_s"] for r in t.rows)
        end = max(r["timestamp"] for r in t.rows)
        spans.append((start, end, t.rows[0][C.NODE_ID], t.rows[0][C.GPU_IDS].split(",")))
    return spans


def peak_gpus(spans, node: str | None = None) -> float:
    """The most GPU shares held at one moment (on one node, or across the cluster)."""
    events = sorted([(s, GPU_PER_TRIAL) for s, e, n, _ in spans if node in (None, n)] + [(e, -GPU_PER_TRIAL) for s, e, n, _ in spans if node in (None, n)],
                    key=lambda ev: (ev[0], ev[1]))  # at equal times a release counts before an acquire
    held = peak = 0.0
    for _, delta in events:
        held += delta
        peak = max(peak, held)
    return peak


@pytest.mark.timeout(300)
def test_multi_node_run_with_fractional_gpus(cluster, packed_experiment, tmp_path):
    address, env = cluster
    done = cli(["run", str(packed_experiment), "--address", address], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "runs" / "packed"
    assert "Best trial" in done.stdout and str(run_dir) in done.stdout

    trials = R.load_trials(run_dir)
    assert len(trials) == 4 and all(t.epochs == 3 and not t.error for t in trials)
    # Every trial got exactly one GPU id from Ray (half of one GPU) and recorded where it ran.
    for t in trials:
        assert all(r[C.GPU_IDS] and len(r[C.GPU_IDS].split(",")) == 1 for r in t.rows), t.rows[0]
        assert all(r[C.NODE] and r[C.DEVICE] == "cpu" for r in t.rows)  # no CUDA here: the assigned share, on CPU
    spans = trial_spans(trials)
    nodes = {n for _, _, n, _ in spans}
    assert len(nodes) == 2, "trials should have run on both nodes"
    for node in nodes:
        assert peak_gpus(spans, node) <= NODE_GPUS
    assert peak_gpus(spans) <= 2 * NODE_GPUS

    # The run directory is complete: TensorBoard streams per trial (read back), checkpoints, best/ export.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for t in trials:
        events = list(t.path.glob("events.out.tfevents.*"))
        assert events, f"no TensorBoard file in {t.path}"
        acc = EventAccumulator(str(t.path))
        acc.Reload()
        scalars = acc.Tags()["scalars"]
        assert any(C.VAL_LOSS in tag for tag in scalars), scalars
        assert t.checkpoints()
    from trainables import load_model

    model = load_model(str(run_dir / R.BEST_DIR / R.MODEL_FILE))
    assert model is not None
    best = json.loads((run_dir / R.BEST_DIR / R.METRICS_FILE).read_text())
    assert best["trial_id"] in {t.trial_id for t in trials}
    assert (run_dir / R.EXPERIMENT_FILE).is_file()


@pytest.mark.timeout(120)
def test_more_gpus_per_trial_than_any_node_fails_fast(cluster, packed_experiment, tmp_path):
    address, env = cluster
    began = time.monotonic()
    done = cli(["run", str(packed_experiment), "--address", address, "--set", "resources.cpu=2"], env, tmp_path, timeout=100)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: resources: each trial asks for cpu=2, gpu=0.5, but no node has that much")
    assert "2 GPU in 2 node(s)" in done.stderr
    assert not (tmp_path / "runs").exists()  # nothing written
    assert time.monotonic() - began < 90


SEE_SCRIPT = """
import json, sys
import ray
from orchestrator.running import cluster
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
nodes = [n for n in ray.nodes() if n["Alive"]]
print(json.dumps({"there": cluster.nodes_without(sys.argv[2], nodes), "missing": cluster.nodes_without(sys.argv[3], nodes)}))
cluster.check_storage_shared(sys.argv[4])
print("shared ok")
"""


@pytest.mark.timeout(120)
def test_storage_visibility_is_asked_of_every_node(cluster, tmp_path):
    """The probe behind the multi-node storage check: a tiny task pinned to each node looks for a file."""
    address, env = cluster
    present = tmp_path / "present.txt"
    present.write_text("x")
    storage = tmp_path / "new" / "store"
    done = subprocess.run([sys.executable, "-c", SEE_SCRIPT, address, str(present), str(tmp_path / "absent.txt"), str(storage)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[0])
    assert seen["there"] == [] and len(seen["missing"]) == 2  # both nodes asked, each answering for itself
    assert done.stdout.splitlines()[1] == "shared ok"
    assert not (tmp_path / "new").exists()  # the check leaves nothing behind


# A user's model, written into a folder of its own by the test below.
CLUSTER_MODEL = '''
import torch
import torch.nn.functional as F
from torch import nn


class CausalConv(nn.Module):
    """A causal CNN language model: position t sees characters t-k+1..t."""

    def __init__(self, spec, channels: int = 16, kernel_size: int = 4):
        super().__init__()
        self.k = kernel_size
        self.embed = nn.Embedding(spec.in_features, 16)
        self.conv = nn.Conv1d(16, channels, kernel_size)
        self.head = nn.Linear(channels, spec.out_features)

    def forward(self, x):  # (B, T)
        h = F.pad(self.embed(x).transpose(1, 2), (self.k - 1, 0))  # (B, 16, T+k-1)
        return self.head(torch.relu(self.conv(h)).transpose(1, 2))  # (B, T, V)
'''


@pytest.mark.timeout(300)
def test_a_users_model_file_only_on_the_driver_reaches_every_node(cluster, packed_experiment, tmp_path):
    """The model file lies only in the experiment's folder, and the driver runs from another one (Ray puts the
    driver's working directory on its workers' path): a trial on either node imports the file by its module
    name, which only the job's runtime environment (`py_modules`) can have given it."""
    address, env = cluster
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "cluster_user_models.py").write_text(CLUSTER_MODEL)
    config = yaml.safe_load(packed_experiment.read_text())
    config["search_space"]["families"] = {"causal": {"model": "cluster_user_models.py:CausalConv", "channels": {"choice": [8, 16]}}}
    path = project / "own.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    done = cli(["run", str(path), "--address", address], env, elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = R.load_trials(tmp_path / "runs" / "packed")
    assert len(trials) == 4 and all(t.epochs == 3 and not t.error and t.family == "causal" for t in trials)
    assert len({t.rows[0][C.NODE_ID] for t in trials}) == 2, "trials should have run on both nodes"

    import importlib.util

    from trainables import load_model

    spec = importlib.util.spec_from_file_location("cluster_user_models", project / "cluster_user_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = load_model(tmp_path / "runs" / "packed" / R.BEST_DIR / R.MODEL_FILE, model_class=module.CausalConv)
    assert isinstance(model.module, module.CausalConv) and model.family == "causal"


def test_a_trial_refuses_a_node_that_cannot_see_the_run_directory(tmp_path):
    """The guard for nodes that join after the start-up check (an autoscaled node with its own disk)."""
    from trainables.host import check_storage_visible

    marker = tmp_path / "run" / R.EXPERIMENT_FILE
    with pytest.raises(RuntimeError, match=r"storage not shared: node 10\.0\.0\.7 cannot see .*run.*s3://"):
        check_storage_visible(str(marker), "10.0.0.7")
    marker.parent.mkdir()
    marker.write_text("name: x\n")
    check_storage_visible(str(marker), "10.0.0.7")
    check_storage_visible(None, "10.0.0.7")  # cloud storage: nothing to look for


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_an_address_nobody_answers_fails_in_seconds(packed_experiment, tmp_path):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = cli(["run", str(packed_experiment), "--address", f"127.0.0.1:{port}"], env, tmp_path, timeout=50)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: --address 127.0.0.1:{port}: nothing answers there")
    assert not (tmp_path / "runs").exists()


# s3_server (a local S3 server with one bucket, runs-bucket) is in conftest.py, shared with tests/test_api.py.


@pytest.mark.timeout(240)
def test_s3_storage_end_to_end(s3_server, packed_experiment, tmp_path):
    """`--storage s3://...` through pyarrow's S3 client (against a local S3 server): trials checkpoint to the
    bucket, best/ is uploaded, and the printed fetch command brings back a run every local command reads."""
    small = ["--set", "resources.gpu=0", "--set", "resources.cpu=1", "--set", "num_samples=2", "--set", "scheduler.max_epochs=2"]
    done = cli(["run", str(packed_experiment), "--storage", "s3://runs-bucket/runs", "--name", "s3run", *small], s3_server, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stored at: s3://runs-bucket/runs/s3run" in done.stdout
    fetch = done.stdout.split("(fetch: ", 1)[1].rsplit(")", 1)[0]
    assert fetch == "python -c \"import pyarrow.fs as f; f.copy_files('s3://runs-bucket/runs/s3run', 'runs/s3run')\""
    fetched = subprocess.run(fetch.replace("python", sys.executable, 1), shell=True, env=s3_server, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert fetched.returncode == 0, fetched.stderr
    run_dir = tmp_path / "runs" / "s3run"
    trials = R.load_trials(run_dir)
    assert len(trials) == 2 and all(t.checkpoints() and list(t.path.glob("events.out.tfevents.*")) for t in trials)
    assert (run_dir / R.BEST_DIR / R.MODEL_FILE).is_file() and R.read_experiment(run_dir)["storage"] == "s3://runs-bucket/runs"
    board = cli(["best", str(run_dir)], s3_server, tmp_path, timeout=60)
    assert board.returncode == 0 and "best model" in board.stdout

    # The driver's own copy (in its TMPDIR) has every trial's results but the weights of the best checkpoints only.
    mirror = next(tmp_path.glob("orchestrator-*/s3run"))
    assert {t.trial_id for t in R.load_trials(mirror)} == {t.trial_id for t in trials}
    assert len(list(mirror.glob("*/checkpoint_*/state.pt"))) == 2 < len(list(run_dir.glob("*/checkpoint_*/state.pt")))
    assert (mirror / R.BEST_DIR / R.MODEL_FILE).read_bytes() == (run_dir / R.BEST_DIR / R.MODEL_FILE).read_bytes()

    # The read-only commands also take the URI itself, reading a copy taken then.
    uri = "s3://runs-bucket/runs/s3run"
    remote_board = cli(["best", uri, "--json"], s3_server, tmp_path, timeout=60)
    assert remote_board.returncode == 0, remote_board.stderr
    assert json.loads(remote_board.stdout)["trials"] == json.loads(cli(["best", str(run_dir), "--json"], s3_server, tmp_path, timeout=60).stdout)["trials"]
    exported = cli(["export", uri, "--out", "from_uri.pt"], s3_server, tmp_path, timeout=60)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "from_uri.pt").read_bytes() == (run_dir / R.BEST_DIR / R.MODEL_FILE).read_bytes()
    reported = cli(["report", uri], s3_server, tmp_path, timeout=120)
    assert reported.returncode == 0 and (tmp_path / "s3run-report.html").stat().st_size > 10_000, reported.stderr

    again = cli(["run", str(packed_experiment), "--storage", "s3://runs-bucket/runs", "--name", "s3run", *small], s3_server, tmp_path, timeout=60)
    assert again.returncode == 2 and "s3://runs-bucket/runs/s3run already exists" in again.stderr


@pytest.mark.timeout(300)
def test_s3_run_interrupted_then_resumed_from_its_uri(s3_server, packed_experiment, tmp_path):
    """Ctrl-C on a run stored at a URI prints `orchestrator resume s3://...`, and resuming from the URI alone
    (no local copy needed) finishes every trial from its checkpoints in the bucket."""
    import boto3

    small = ["--set", "resources.gpu=0", "--set", "resources.cpu=1", "--set", "num_samples=3", "--set", "max_concurrent=1"]
    uri = "s3://runs-bucket/runs/s3resume"
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(packed_experiment), "--storage", "s3://runs-bucket/runs",
                             "--name", "s3resume", *small], env=s3_server, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    s3 = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"], aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")

    def checkpointed() -> bool:  # a trial has saved a checkpoint to the bucket
        return any("/checkpoint_" in o["Key"] for o in s3.list_objects_v2(Bucket="runs-bucket", Prefix="runs/s3resume/").get("Contents", []))

    out, err = ctrl_c_when(proc, checkpointed, wait=150)
    assert proc.returncode == 130, out + err
    assert f"orchestrator resume {uri}" in out

    resumed = cli(["resume", uri], s3_server, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"stored at: {uri}" in resumed.stdout
    fetch = resumed.stdout.split("(fetch: ", 1)[1].rsplit(")", 1)[0]
    fetched = subprocess.run(fetch.replace("python", sys.executable, 1), shell=True, env=s3_server, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert fetched.returncode == 0, fetched.stderr
    local = tmp_path / "runs" / "s3resume"
    trials = R.load_trials(local)
    assert len(trials) == 3
    for t in trials:  # every trial has its 3 epochs: interrupted ones continued from a checkpoint, none restarted
        assert [r["training_iteration"] for r in t.rows] == [1, 2, 3], t.trial_id
        written = [json.loads(line)["training_iteration"] for line in (t.path / "result.json").read_text().splitlines()]
        assert written.count(1) == 1, written  # an epoch reported before its checkpoint was saved may run twice, never the first
    assert (local / R.BEST_DIR / R.MODEL_FILE).is_file()

    missing = cli(["resume", "s3://runs-bucket/runs/no-such-run"], s3_server, tmp_path, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("error: s3://runs-bucket/runs/no-such-run: no such run")
