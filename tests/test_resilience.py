"""Failures for real: the driver SIGKILLed mid-search and resumed, a trial's worker process killed
mid-trial, and trials whose loss diverges; nothing is lost, nothing finished runs twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from orchestrator import results as R
from orchestrator.cli import main

from conftest import ctrl_c_when

REPO = Path(__file__).resolve().parent.parent


def rows(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def trial_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if (p / "params.json").is_file()) if run_dir.is_dir() else []


def saved_as_terminated(run_dir: Path) -> set[str]:
    """Trial ids Tune's latest saved experiment state records as finished."""
    states = sorted(run_dir.glob("experiment_state-*.json")) if run_dir.is_dir() else []
    try:
        state = json.loads(states[-1].read_text()) if states else {}
    except json.JSONDecodeError:  # caught mid-write
        return set()
    return {json.loads(t)["trial_id"] for t, _ in state.get("trial_data", []) if json.loads(t).get("status") == "TERMINATED"}


def write(tmp: Path, **changes) -> Path:
    config = {
        "name": "r",
        "task": {"kind": "charlm", "max_chars": 40000, "seq_len": 32},
        "search_space": {
            "families": {"gru": {"hidden_size": {"choice": [32, 48]}}, "mlp": {"hidden_size": {"choice": [64, 96]}}},
            "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}, "batch_size": 32},
        },
        "scheduler": {"kind": "fifo", "max_epochs": 6},
        "num_samples": 6,
        "max_concurrent": 2,
        "storage": str(tmp / "runs"),
        **changes,
    }
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.timeout(420)
def test_driver_sigkill_then_resume(tmp_path):
    path = write(tmp_path, num_samples=8, task={"kind": "charlm", "max_chars": 150000, "seq_len": 32})
    run_dir = tmp_path / "runs" / "r"
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(path)], cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        # Kill as soon as Tune's saved state records two finished trials: resume must not run those again.
        while len(saved_as_terminated(run_dir)) < 2:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "no two trials finished in time"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and every Ray process it started, without warning
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished_before = {d.name: rows(d) for d in trial_dirs(run_dir) if d.name.split("_", 1)[1] in saved_as_terminated(run_dir)}
    assert len(finished_before) >= 2
    assert R.unfinished_trials(run_dir) or len(trial_dirs(run_dir)) < 8, "killed too late: nothing left to resume"
    assert not (run_dir / "best" / "model.pt").exists(), "killed before the end: no export yet"

    resumed = subprocess.run([sys.executable, "-m", "orchestrator", "resume", str(run_dir)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, start_new_session=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    dirs = trial_dirs(run_dir)
    assert len(dirs) == 8, [d.name for d in dirs]
    for d in dirs:
        iterations = [r["training_iteration"] for r in rows(d)]
        assert iterations.count(1) == 1, f"{d.name} started over instead of resuming: {iterations}"
        assert max(iterations) == 6, f"{d.name} did not finish: {iterations}"
    for name, before in finished_before.items():
        assert rows(run_dir / name) == before, f"finished trial {name} ran again"
    assert (run_dir / "best" / "model.pt").is_file() and (run_dir / "best" / "metrics.json").is_file()
    assert "Best trial" in resumed.stdout


@pytest.mark.timeout(300)
def test_killed_worker_resumes_trial_from_checkpoint(tmp_path, ray_session, capsys):
    path = write(tmp_path, num_samples=3, max_failures=2)
    run_dir = tmp_path / "runs" / "r"
    killed: dict = {}

    def kill_one_worker():
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and not killed:
            for d in trial_dirs(run_dir):
                last = rows(d)[-1:] or [{}]
                if 2 <= last[0].get("training_iteration", 0) < 5:
                    killed.update(trial=d.name, pid=last[0]["pid"], at=last[0]["training_iteration"])
                    os.kill(last[0]["pid"], signal.SIGKILL)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    assert main(["run", str(path)]) == 0
    killer.join()
    assert killed, "no trial was caught mid-run"
    iterations = [r["training_iteration"] for r in rows(run_dir / killed["trial"])]
    assert iterations.count(1) == 1, f"the trial restarted from scratch: {iterations}"
    assert max(iterations) == 6
    assert len({r["pid"] for r in rows(run_dir / killed["trial"])}) >= 2, "the trial must continue in a new worker"
    assert not (run_dir / killed["trial"] / "error.txt").exists() or max(iterations) == 6


@pytest.mark.timeout(240)
def test_diverging_trials_are_marked_and_the_search_succeeds(tmp_path, ray_session, capsys):
    space = {
        "families": {"mlp": {"hidden_size": 32}},
        "train": {"lr": {"choice": [0.003, 1.0e6]}, "optimizer": "sgd", "momentum": 0.9},
    }
    path = write(tmp_path, task={"kind": "forecast"}, search_space=space, searcher="random", num_samples=6,
                 scheduler={"kind": "fifo", "max_epochs": 3})
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "diverged" in out
    capsys.readouterr()
    assert main(["best", str(tmp_path / "runs" / "r"), "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    statuses = {t["trial_id"]: t["status"] for t in board["trials"]}
    lrs = {t["trial_id"]: t["hyperparameters"]["lr"] for t in board["trials"]}
    assert {lrs[t] for t, s in statuses.items() if s == "diverged"} == {1.0e6}
    assert {lrs[t] for t, s in statuses.items() if s == "finished"} == {0.003}
    assert board["best"]["hyperparameters"]["lr"] == 0.003


@pytest.mark.timeout(300)
def test_ctrl_c_stops_cleanly_and_prints_the_resume_command(tmp_path):
    path = write(tmp_path, num_samples=4)
    run_dir = tmp_path / "runs" / "r"
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(path)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = ctrl_c_when(proc, lambda: any(rows(d) for d in trial_dirs(run_dir)))
    assert proc.returncode == 130, out + err
    assert f"orchestrator resume {run_dir}" in out
    assert "Traceback" not in err
    resumed = subprocess.run([sys.executable, "-m", "orchestrator", "resume", str(run_dir)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=240, start_new_session=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(trial_dirs(run_dir)) == 4


def test_epochs_a_resumed_trial_ran_again_are_read_once(tmp_path):
    """result.json of a trial that resumed from an older checkpoint repeats epochs; readers see its final attempt."""
    lines = [{"training_iteration": i, "val_bpc": v} for i, v in [(1, 3.0), (2, 2.5), (3, 2.4), (2, 2.6), (3, 2.3), (4, 2.2)]]
    (tmp_path / "result.json").write_text("\n".join(json.dumps(r) for r in lines) + '\n{"training_iteration": 5, "val_b')
    rows = R._read_rows(tmp_path / "result.json")
    assert [(r["training_iteration"], r["val_bpc"]) for r in rows] == [(1, 3.0), (2, 2.6), (3, 2.3), (4, 2.2)]


def test_trials_are_listed_in_the_order_they_started(tmp_path):
    """By their first epoch's start, not by their files' times (Tune copies trial folders to storage later)."""
    for name, start, mtime in [("t_first", 100.0, 2000.0), ("t_second", 105.0, 1000.0)]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "params.json").write_text("{}")
        (folder / "result.json").write_text(json.dumps({"training_iteration": 1, "timestamp": start + 2.0, "time_this_iter_s": 2.0}) + "\n")
        os.utime(folder / "params.json", (mtime, mtime))
    (tmp_path / "t_waiting").mkdir()
    (tmp_path / "t_waiting" / "params.json").write_text("{}")
    os.utime(tmp_path / "t_waiting" / "params.json", (10.0, 10.0))  # no epoch yet: after every trial that trained
    assert [t.trial_id for t in R.load_trials(tmp_path)] == ["first", "second", "waiting"]
