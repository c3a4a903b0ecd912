"""Ray itself and the cluster it runs on: starting the embedded local Ray or joining a cluster, and the
checks made before a search is started there (capacity, shared storage, how many trials fit at once).

`tuning` builds the search's Ray objects on top of this; nothing here knows about searchers or trainables.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.experiment.config import ExperimentConfig

# Ray reads these at import; set before the first `import ray` of the process (this module is what starts Ray).
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# The legacy reporter honours verbose=0; the new one still prints its own banner (with a TensorBoard
# path in Ray's temp dir) over our progress view.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Save the experiment state (trial statuses, searcher) every 2 s instead of 10 s, so that a driver killed
# without warning loses at most 2 s of bookkeeping: a trial that finished is then rarely run again on resume.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "60")


# `ray up` leaves the autoscaler's config on the head node here; a driver on the head (a Ray Job, or a
# shell from `ray attach`) reads from it which nodes the cluster can still add.
BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")
# The address start_ray connected to (None for the embedded local Ray), and whether it shipped the user's model files.
_cluster = {"address": None, "shipped": False}


# Ray starts one job-less worker per CPU when the first driver connects. A trial can't use them (its actors
# get workers of the job), so on a 2-core laptop they only compete with the trial workers' imports: without
# them the first epoch starts ~0.8 s sooner (9.4 s against 10.2 s from launch, median of 8 each).
LOCAL_RAY_SYSTEM_CONFIG = {"prestart_worker_first_driver": False}


# What the driver imports next, once Ray is up: Ray Tune (0.85 s, pandas and pyarrow included), the trainable
# and the callbacks. Starting Ray mostly waits on its processes, so these load in a thread meanwhile.
AHEAD_OF_TUNING = ("ray.tune", "trainables.trainable", "orchestrator.watch.progress", "orchestrator.watch.tensorboard")
# Modules that ray.init itself imports and that the imports ahead import too (tests/test_end_to_end.py checks
# the list against the installed Ray): they load before the thread starts, so that no module is ever imported
# by both threads at once (Python hands one of them a half-initialized module when two imports wait on each other).
IMPORTED_BY_RAY_INIT = ("socketserver", "ray._common.usage.usage_lib", "ray.dashboard")


def start_ray(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None, imports: Sequence[str] = (),
              py_modules: Sequence[str] = ()) -> None:
    """Starts the embedded local Ray (the default) or connects to a cluster; no-op when Ray already runs.

    `address="local"` always starts a fresh in-process instance, never a stale cluster left in /tmp.
    `address="auto"` (inside a Ray Job, or on a cluster node) or `HOST:PORT` joins an existing cluster.
    Worker output stays in Ray's log files; the progress view reports what matters. `imports` (then, for
    the embedded Ray, AHEAD_OF_TUNING) are imported in a thread meanwhile: starting Ray mostly waits on its
    processes, so the driver's CPU is free for them. `py_modules`: the user's model files, shipped to every
    node of a cluster with the job's runtime environment (the embedded Ray's workers read them where they are).
    """
    import ray

    if ray.is_initialized():
        return
    if not address:
        # Only for the embedded start, the one whose imports the test checks (connecting to a cluster imports others).
        for module in IMPORTED_BY_RAY_INIT:
            importlib.import_module(module)
        imports = tuple(imports) + AHEAD_OF_TUNING
    importer = threading.Thread(target=_import_ahead, args=(tuple(imports),), name="import-ahead", daemon=True)
    importer.start()
    try:
        _init_ray(ray, address, num_cpus, num_gpus, py_modules)
    finally:
        importer.join()


def _import_ahead(modules: tuple[str, ...]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            return  # the import that needs the module raises this error again, where it can be reported


def _init_ray(ray, address: str | None, num_cpus: int | None, num_gpus: int | None, py_modules: Sequence[str] = ()) -> None:
    common = dict(log_to_driver=False, logging_level="ERROR", configure_logging=True)
    if address:
        _check_reachable(address)
        # Inside a Ray Job, Ray merges this with the job's own runtime environment (its working_dir).
        shipped = {"runtime_env": {"py_modules": list(py_modules)}} if py_modules else {}
        try:
            ray.init(address=address, **shipped, **common)
        except ConnectionError as exc:
            raise UserError(_connect_problem(address, exc)) from None
        _cluster["address"] = address
        _cluster["shipped"] = bool(py_modules)
    else:
        ray.init(
            address="local", num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, include_dashboard=False,
            _system_config=LOCAL_RAY_SYSTEM_CONFIG, **common,
        )


def models_shipped() -> bool:
    """Whether the user's model files reached the workers through Ray's runtime environment (so that they
    import them by module name), rather than being read from the driver's paths by workers on its machine."""
    return bool(_cluster.get("shipped"))


def _check_reachable(address: str) -> None:
    """A HOST:PORT nobody listens on fails in seconds here; Ray itself retries it for minutes."""
    import socket

    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise UserError(f"--address {address}: nothing answers there ({exc}); check HOST:PORT (the head's GCS port, 6379 by default)") from None


def _connect_problem(address: str, exc: BaseException) -> str:
    chain, cause = [], exc
    while cause is not None:
        chain.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    text = " ".join(chain)
    if "InvalidAuthToken" in text or "AuthenticationError" in text:
        # Ray sends the token only when RAY_AUTH_MODE=token, and never guesses it for an explicit address.
        return (
            f"--address {address}: the cluster requires its authentication token; export RAY_AUTH_MODE=token and make "
            "the cluster's token available as ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH=FILE or RAY_AUTH_TOKEN=VALUE "
            "(on the head node, `ray get-auth-token` prints it)"
        )
    return f"--address {address}: no Ray cluster answers there ({exc}); check HOST:PORT (the head's GCS port, 6379 by default)"


def node_types_from_autoscaler(config: dict) -> dict[str, tuple[dict[str, float], int]]:
    """{node type: (resources of one node, how many the autoscaler may start)} from a `ray up` cluster config."""
    types = {}
    for name, spec in config.get("available_node_types", {}).items():
        count = spec.get("max_workers", config.get("max_workers", 0)) if name != config.get("head_node_type") else 0
        if count:
            types[name] = ({k: float(v) for k, v in spec.get("resources", {}).items()}, int(count))
    return types


def autoscaling_node_types() -> dict[str, tuple[dict[str, float], int]] | None:
    """The node types the connected cluster's autoscaler can add; None for a fixed cluster (or the local Ray)."""
    import yaml

    if not _cluster["address"]:
        return None
    try:  # KubeRay and the v2 autoscaler publish their node groups to the GCS
        import ray._private.state

        published = ray._private.state.state.get_cluster_config()
    except Exception:  # an older or newer Ray without it: fall back to the launcher's file
        published = None
    if published is not None and published.node_group_configs:
        return {g.name: ({k: float(v) for k, v in g.resources.items()}, g.max_count if g.max_count >= 0 else 10**6)
                for g in published.node_group_configs if g.max_count != 0}
    path = BOOTSTRAP_CONFIG.expanduser()
    if path.is_file():
        return node_types_from_autoscaler(yaml.safe_load(path.read_text()) or {}) or None
    return None


def capacity_verdict(need: dict[str, float], nodes: list[dict[str, float]], node_types: dict | None) -> tuple[str, str | None]:
    """("fits", None) if some node holds one trial now, ("wait", node type) if only a node the autoscaler can
    add does, ("never", None) otherwise."""

    def holds(resources: dict[str, float]) -> bool:
        return all(resources.get(k, 0) >= v for k, v in need.items() if v > 0)

    if any(holds(n) for n in nodes):
        return "fits", None
    for name, (resources, _count) in (node_types or {}).items():
        if holds(resources):
            return "wait", name
    return "never", None


def slots(need: dict[str, float], nodes: list[dict[str, float]]) -> int:
    """How many workers of `need` the nodes hold together, each worker whole on one node."""
    wanted = {k: v for k, v in need.items() if v > 0}
    return int(sum(min((n.get(k, 0) // v for k, v in wanted.items()), default=0) for n in nodes))


def workers_fit(need: dict[str, float], workers: int, nodes: list[dict[str, float]], node_types: dict | None) -> bool:
    """Whether a trial's `workers` bundles of `need` can be placed at once (Ray packs them, across nodes if it
    must), on the nodes there are or, on an autoscaling cluster, on those it may add."""
    added = [resources for resources, count in (node_types or {}).values() for _ in range(min(count, workers))]
    return slots(need, nodes + added) >= workers


def check_capacity(config: ExperimentConfig, out=None) -> None:
    """Refuses a per-trial request no node of the cluster could ever satisfy (instead of waiting forever); on an
    autoscaling cluster that can add a node that fits, says that the run waits for it."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    r = config.resources
    need = {"CPU": r.cpu, "GPU": r.gpu}
    types = autoscaling_node_types()
    verdict, node_type = capacity_verdict(need, nodes, types)
    asks = f"resources: each trial asks for cpu={r.cpu:g}, gpu={r.gpu:g}"
    if r.workers > 1:
        asks = f"resources: each trial asks for {r.workers} workers of cpu={r.cpu:g}, gpu={r.gpu:g} (cpu={r.cpu * r.workers:g}, gpu={r.gpu * r.workers:g} in all)"
        if verdict != "never" and not workers_fit(need, r.workers, nodes, types):
            have = ray.cluster_resources()
            raise UserError(f"{asks}, but the cluster cannot place {r.workers} such workers at once "
                            f"(cluster: {have.get('CPU', 0):g} CPU, {have.get('GPU', 0):g} GPU in {len(nodes)} node(s), "
                            f"room for {slots(need, nodes)} workers); lower `resources.workers`, or add nodes")
    if verdict == "wait":
        res = types[node_type][0]
        print(f"{asks}; no node has that much yet: waiting for the autoscaler to start `{node_type}` nodes "
              f"({res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU each; cloud nodes take minutes to boot)",
              file=out or sys.stdout, flush=True)
    elif verdict == "never":
        have = ray.cluster_resources()
        where = f"cluster: {have.get('CPU', 0):g} CPU, {have.get('GPU', 0):g} GPU in {len(nodes)} node(s)"
        if types:
            where += "; nodes it can add: " + ", ".join(f"{n} ({r.get('CPU', 0):g} CPU, {r.get('GPU', 0):g} GPU)" for n, (r, _) in types.items())
        hint = "lower `resources` or add nodes"
        if config.resources.gpu > 0 and not have.get("GPU") and not any(r.get("GPU") for r, _ in (types or {}).values()):
            hint = "this Ray has no GPU: set resources.gpu=0 to train on CPUs, or run on GPU nodes (--address, cluster.yaml)"
        raise UserError(f"{asks}, but no node has that much ({where}); {hint}")


def check_storage_shared(root: str) -> None:
    """On a multi-node cluster, refuses a storage path that some node cannot see: trials on that node would
    write their checkpoints to its own disk, where the run never finds them."""
    import uuid

    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return
    root_path = Path(root)
    made = [p for p in [root_path, *root_path.parents] if not p.exists()]
    root_path.mkdir(parents=True, exist_ok=True)
    marker = root_path / f".storage-check-{uuid.uuid4().hex}"
    marker.write_text("")
    try:
        blind = nodes_without(str(marker), nodes)
    finally:  # leave nothing behind: a rejected run writes nothing
        marker.unlink()
        for p in made:
            p.rmdir()
    if blind:
        raise UserError(
            f"storage {root}: {len(blind)} of {len(nodes)} cluster nodes cannot see this directory "
            f"({', '.join(blind)}); their trials would keep checkpoints on their own disks. Use a cloud URI "
            "(--storage s3://BUCKET/runs or gs://BUCKET/runs) or a directory that every node mounts"
        )


def nodes_without(path: str, nodes: list[dict]) -> list[str]:
    """The nodes (as `ip/node id`) on which `path` does not exist, asked by a tiny task pinned to each node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # os.path.exists itself is the task: a worker runs it without importing this project (or torch).
    exists = ray.remote(num_cpus=0)(os.path.exists)
    refs = [exists.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(path) for n in nodes]
    seen = ray.get(refs, timeout=120)
    return [f"{n['NodeManagerAddress']}/{n['NodeID'][:8]}" for n, ok in zip(nodes, seen) if not ok]


def default_concurrency(config: ExperimentConfig) -> int:
    """As many trials as the cluster's CPUs (and GPUs) hold at once, capped by num_samples; on an autoscaling
    cluster, as many as it holds once every node it may add is up."""
    import ray

    have = dict(ray.cluster_resources())
    for resources, count in (autoscaling_node_types() or {}).values():
        for key, value in resources.items():
            have[key] = have.get(key, 0) + value * count
    per_trial = config.resources.per_trial()
    trials = have.get("CPU", 1) // per_trial["CPU"]
    if per_trial["GPU"] > 0:
        trials = min(trials, have.get("GPU", 0) // per_trial["GPU"])
    return int(max(1, min(trials, config.num_samples)))
