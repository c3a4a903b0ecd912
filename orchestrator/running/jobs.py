"""`orchestrator submit`: the same experiment as a Ray Job on a cluster, through Ray's Jobs API.

The current directory is shipped as the job's working directory (run outputs, virtual environments and
git metadata left out), so the experiment file, the search spaces, data and model files next to it and this
project's code as checked out here all reach the cluster. There the job runs `python -m orchestrator run`
against the cluster itself (`--address auto`), and its driver on the head node loads the data once for
trials on every node. Logs stream back here; the job's exit status becomes this command's; Ctrl-C
detaches and leaves the job running.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.reading.storage import is_uri

# Left out of the upload: outputs, environments and caches (Ray also honours .gitignore and .rayignore).
EXCLUDES = ["runs/", ".venv/", "venv/", ".git/", "**/__pycache__/", "*.egg-info/", ".pytest_cache/"]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def submit(args) -> int:
    """Validates the experiment here, submits it as a Ray Job, streams its logs and returns its exit status."""
    from orchestrator.experiment.load import load_experiment

    # Bad input fails here with exit 2, before anything is uploaded.
    exp = load_experiment(args.experiment, args.set, name=args.name, storage=args.storage)
    workdir = Path.cwd()
    relative = shipped_path(Path(args.experiment), workdir, "the experiment file")
    check_storage(exp.config.storage)
    check_data(exp.config.task.data, exp.file, workdir)
    check_loader(getattr(exp.config.task, "loader", None), exp.file, workdir)
    for model_file in exp.space.model_files():  # a `model: file.py:Class`: the job's driver imports it from the shipped copy
        shipped_path(Path(model_file), workdir, "the model file")

    command = ["python", "-m", "orchestrator", "run", relative.as_posix(), "--address", "auto"]
    for assignment in args.set:
        command += ["--set", assignment]
    if args.name:
        command += ["--name", args.name]
    if args.storage:
        command += ["--storage", args.storage]
    client = connect(args.address)
    runtime_env = {
        "working_dir": str(workdir),
        "excludes": EXCLUDES + storage_excludes(exp.config.storage, workdir),
        # Progress lines reach the log stream as they are printed, not when a pipe buffer fills.
        "env_vars": {"PYTHONUNBUFFERED": "1"},
    }
    job_id = submit_job(client, args.address, entrypoint=shlex.join(command), runtime_env=runtime_env,
                        metadata={"experiment": relative.as_posix(), "submitted_by": "orchestrator"})
    follow = f"ray job logs -f {job_id} --address {args.address}"
    stop = f"ray job stop {job_id} --address {args.address}"
    print(f"Submitted job {job_id} to {args.address}: {shlex.join(command)}", flush=True)
    if args.no_wait:
        print(f"  follow: {follow}\n  stop:   {stop}", flush=True)
        return 0
    # Not asyncio.run: on Ctrl-C it cancels the stream's task, and Ray's log tailing can swallow that cancellation,
    # so one Ctrl-C would sometimes do nothing. Python's own handler raises KeyboardInterrupt out of the loop at once.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(stream_logs(client, job_id))
        return outcome(client, job_id)
    except KeyboardInterrupt:
        print(f"\nDetached: job {job_id} keeps running on the cluster.\n  follow: {follow}\n  stop:   {stop}",
              file=sys.stderr, flush=True)
        return 130
    finally:
        loop.close()


def submit_job(client, address: str, *, wait_s: float = 90, **job) -> str:
    """Submits, waiting out a head node whose job agent is still starting (Ray answers "No available agent")."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.submit_job(**job)
        except (RuntimeError, ValueError, OSError) as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise UserError(f"--address {address}: the cluster refused the job: {exc}") from None
            time.sleep(2)


def shipped_path(path: Path, workdir: Path, what: str) -> Path:
    """`path` relative to the shipped directory; an error if it lies outside (it would not reach the cluster)."""
    try:
        return path.resolve().relative_to(workdir.resolve())
    except ValueError:
        raise UserError(
            f"{path}: {what} is outside the current directory {workdir}, which is what gets shipped to the "
            "cluster; run `orchestrator submit` from a directory that contains it"
        ) from None


def check_storage(storage: str) -> None:
    """A relative storage path would land inside the job's temporary copy of this directory on the head node."""
    if not is_uri(storage) and not Path(storage).expanduser().is_absolute():
        raise UserError(
            f"storage '{storage}': a relative path would put the results inside the job's temporary working "
            "directory on the cluster; pass --storage s3://BUCKET/runs (or gs://...), or an absolute path that "
            "every node mounts"
        )


def check_data(data: str | None, experiment: Path, workdir: Path) -> None:
    """A local data file must travel with the shipped directory; a path that does not exist here is taken
    to be a path on the cluster (the driver on the head node reads it)."""
    if data is None or is_uri(data):
        return
    path = Path(data).expanduser()
    if not path.is_absolute():
        beside = experiment.parent / path
        path = beside if beside.exists() else path
    if path.exists():
        shipped_path(path, workdir, "task.data")
    else:
        print(f"note: task.data {data} does not exist here; it must exist on the cluster's head node", file=sys.stderr)


def check_loader(loader: str | None, experiment: Path, workdir: Path) -> None:
    """A `custom` task's loader file must travel with the shipped directory: the job's driver calls it there."""
    if not loader:
        return
    path = Path(loader.rpartition(":")[0]).expanduser()
    if not path.is_absolute() and (experiment.parent / path).exists():
        path = experiment.parent / path
    shipped_path(path, workdir, "task.loader's file")


def storage_excludes(storage: str, workdir: Path) -> list[str]:
    """Earlier results stored under the shipped directory are not uploaded again."""
    if is_uri(storage):
        return []
    try:
        return [Path(storage).expanduser().resolve().relative_to(workdir.resolve()).as_posix() + "/"]
    except ValueError:
        return []


@contextmanager
def _explicit_address():
    # Ray's client prefers RAY_ADDRESS / RAY_API_SERVER_ADDRESS over its `address` argument; --address is
    # what the user asked for, so those are hidden while the client is made.
    saved = {k: os.environ.pop(k) for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def connect(address: str):
    """A JobSubmissionClient for the cluster's dashboard, or a UserError that says how to reach it."""
    import logging

    from ray.job_submission import JobSubmissionClient

    # The SDK logs each upload and socket event at INFO; the job's own output is what matters here.
    for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk", "ray._private.runtime_env.packaging"):
        logging.getLogger(name).setLevel(logging.WARNING)

    try:
        with _explicit_address():
            return JobSubmissionClient(address)
    except Exception as exc:  # the client raises ConnectionError, RuntimeError or ValueError by cause
        text = str(exc)
        if "ray[default]" in text:
            hint = "this machine lacks Ray's Jobs client: pip install -c constraints.txt -e '.[cluster]'"
        elif any(word in text for word in ("401", "403", "Unauthorized", "authentication", "Authentication")):
            hint = ("the cluster requires its token: export RAY_AUTH_MODE=token with the cluster's token in "
                    "~/.ray/auth_token (or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH)")
        else:
            hint = "is the dashboard reachable? For a `ray up` cluster, run `ray dashboard cluster.yaml` and use http://127.0.0.1:8265"
        raise UserError(f"--address {address}: cannot use the Jobs API there ({text.splitlines()[0] if text else type(exc).__name__}); {hint}") from None


async def stream_logs(client, job_id: str) -> None:
    async for chunk in client.tail_job_logs(job_id):
        print(chunk, end="", flush=True)


def outcome(client, job_id: str) -> int:
    """0 when the job succeeded, else the exit status of its driver (1 when it has none, e.g. stopped)."""
    status = str(client.get_job_status(job_id))
    deadline = time.monotonic() + 60
    while status.split(".")[-1] not in TERMINAL and time.monotonic() < deadline:
        # The log stream ends when the driver exits; the status may take a moment to follow.
        time.sleep(0.5)
        status = str(client.get_job_status(job_id))
    status = status.split(".")[-1]
    if status == "SUCCEEDED":
        print(f"Job {job_id} succeeded.", flush=True)
        return 0
    info = client.get_job_info(job_id)
    code = getattr(info, "driver_exit_code", None)
    # The message repeats the end of the log (already streamed above): its first line says what happened.
    reason = (info.message or "").strip().splitlines()[:1]
    print(f"Job {job_id} {status.lower()}" + (f": {reason[0]}" if reason else ""), file=sys.stderr, flush=True)
    return code if isinstance(code, int) and code > 0 else 1
