"""The Python API: `orchestrator.run` from a mapping, `orchestrator.load_run` on a directory and on an s3:// URI,
and the DataFrames, checked value by value against the run's own files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_MAX_EPOCHS, tiny_config

import orchestrator
from orchestrator.cli import main
from orchestrator.reading import results as R
from trainables import constants as C

REPO = Path(__file__).resolve().parent.parent


def same(a, b) -> bool:
    """Equal values, NaN (a missing value in a DataFrame) standing for None."""
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    return (missing(a) and missing(b)) or a == b


@pytest.mark.timeout(240)
def test_run_from_a_mapping_returns_the_run(ray_session, tmp_path):
    config = tiny_config(tmp_path / "runs", num_samples=2, scheduler={"kind": "fifo", "max_epochs": 3})
    run = orchestrator.run(config, name="api", **{"scheduler.max_epochs": 1})
    assert isinstance(run, orchestrator.Run) and run.path == tmp_path / "runs" / "api"
    assert len(run.trials) == 2 and all(t.epochs == 1 for t in run.trials), "the dotted override reached scheduler.max_epochs"
    assert run.experiment["scheduler"]["kind"] == "fifo" and run.metric == C.BPC
    exported = json.loads((run.path / "best" / "metrics.json").read_text())
    assert run.best_trial.trial_id == exported["trial_id"] == run.dataframe().sort_values(f"{C.BPC}_best").iloc[0]["trial_id"]
    model = run.best_model()
    assert model.family == run.best_trial.family and model.metrics == exported["metrics"]


def test_bad_input_raises_the_clis_error(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "runs", num_samples=0)))
    with pytest.raises(orchestrator.UserError) as raised:
        orchestrator.run(path)
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {raised.value}\n"
    assert "key 'num_samples': value 0" in str(raised.value)
    with pytest.raises(orchestrator.UserError, match="unknown key 'num_sample'; did you mean 'num_samples'"):
        orchestrator.run(tiny_config(tmp_path / "runs"), num_sample=2)
    with pytest.raises(orchestrator.UserError, match="not a run directory"):
        orchestrator.load_run(tmp_path)
    assert not (tmp_path / "runs").exists()


def test_every_kind_of_experiment_gives_the_same_validated_one(tmp_path):
    """A YAML path, a mapping, an ExperimentConfig and an Experiment, with the same override: one experiment."""
    from orchestrator.api import _experiment
    from orchestrator.experiment.load import load_experiment

    raw = tiny_config(tmp_path / "runs")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    loaded = load_experiment(path)
    sources = [path, raw, loaded.config, loaded]
    configs = [_experiment(source, {"num_samples": 3, "scheduler.max_epochs": 2}).config for source in sources]
    assert all(c == configs[0] for c in configs) and configs[0].num_samples == 3 and configs[0].scheduler.max_epochs == 2
    assert configs[0].scheduler.kind == "asha" and configs[0].scheduler.grace_period == 1, "a dotted key changes that key only"
    assert _experiment(loaded, {}) is loaded


def check_frames(run: orchestrator.Run, run_dir: Path) -> None:
    """Both DataFrames of `run` hold exactly what `run_dir`'s files say."""
    trials = R.load_trials(run_dir)
    board = {row["trial_id"]: row for row in R.leaderboard_rows(trials, C.BPC, "min", TINY_MAX_EPOCHS)}
    frame = run.dataframe()
    assert list(frame["trial_id"]) == [t.trial_id for t in trials]
    for row, trial in zip(frame.to_dict("records"), trials):
        assert row["family"] == trial.family and row["status"] == board[trial.trial_id]["status"]
        assert row["epochs"] == len(trial.rows) == trial.rows[-1]["training_iteration"]
        params = json.loads((trial.path / "params.json").read_text())
        assert row["lr"] == params["lr"] and row["model/hidden_size"] == params["arch"]["model"]["hidden_size"]
        assert same(row.get("model/context"), params["arch"]["model"].get("context"))
        for key in (C.BPC, C.VAL_LOSS, C.TRAIN_LOSS):
            assert row[f"{key}_last"] == trial.rows[-1][key] and row[f"{key}_best"] == min(r[key] for r in trial.rows)
        assert row["time_total_s"] == trial.rows[-1]["time_total_s"]
        assert row["ended"].timestamp() == pytest.approx(trial.rows[-1]["timestamp"])
    epochs = run.dataframe(per_epoch=True)
    assert len(epochs) == sum(len(t.rows) for t in trials)
    by_epoch = {(r["trial_id"], r["epoch"]): r for r in epochs.to_dict("records")}
    for trial in trials:
        for r in trial.rows:
            row = by_epoch[(trial.trial_id, r["training_iteration"])]
            assert all(row[k] == r[k] for k in (C.BPC, C.VAL_LOSS, C.TRAIN_LOSS, C.LEARNING_RATE, "time_this_iter_s"))
    assert "config" not in epochs and "done" not in epochs


def test_dataframes_equal_the_runs_files(finished_run):
    run = orchestrator.load_run(finished_run)
    assert len(run.trials) == 8 and run.best_trial.trial_id == run.best_metrics["trial_id"]
    check_frames(run, finished_run)
    columns = list(run.dataframe().columns)
    assert columns[:2] == ["trial_id", "family"] and columns.index("model/context") < columns.index("lr") < columns.index("status")


@pytest.mark.timeout(180)
def test_load_run_reads_a_run_stored_at_an_s3_uri(finished_run, s3_server, monkeypatch):
    import pyarrow.fs

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(key, s3_server[key])
    pyarrow.fs.copy_files(str(finished_run), "s3://runs-bucket/runs/tiny")
    run = orchestrator.load_run("s3://runs-bucket/runs/tiny")
    assert run.location == "s3://runs-bucket/runs/tiny" and run.path != finished_run
    check_frames(run, finished_run)
    assert run.best_model().family == run.best_trial.family


def test_import_orchestrator_and_reading_a_run_stay_light(finished_run):
    """`import orchestrator` and `load_run(...).dataframe()` import neither torch nor Ray, nor the run flow."""
    code = (f"import sys, orchestrator; orchestrator.load_run({str(finished_run)!r}).dataframe(per_epoch=True); "
            "print([m for m in ('torch', 'ray', 'orchestrator.running.runner', 'orchestrator.experiment.config') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
