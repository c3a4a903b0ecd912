"""`orchestrator run --data FILE --budget 10m`: the planner (no training), the task inferred from data, the
printed config, and one tiny budgeted run that ends within its budget and exports."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.search import budget as B

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("45", 45), (30, 30), ("1.5m", 90)])
def test_durations(text, seconds):
    assert B.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "10x", "0s", "-5m", ""])
def test_bad_durations_state_the_rule(text):
    with pytest.raises(ValueError, match="duration|more than 0"):
        B.parse_duration(text)


def test_asha_epochs_per_trial():
    # rungs 1, 3, 9: every trial runs 1 epoch, a third runs 2 more, a ninth 6 more
    assert B.epochs_per_trial(9, 1, 3) == pytest.approx(1 + 2 / 3 + 6 / 9)
    assert B.epochs_per_trial(9, 1, 3, asha=False) == 9
    assert B.rungs(9, 1, 3) == [1, 3, 9]


@pytest.mark.parametrize("budget_s", [120, 300, 600, 3600])
@pytest.mark.parametrize("costs", [{"lstm": 2.0, "mlp": 0.5}, {"gru": 8.0}, {"a": 0.3, "b": 0.4, "c": 0.2}])
@pytest.mark.parametrize("slots", [1, 2, 8])
def test_the_plan_fits_its_budget(budget_s, costs, slots):
    """Whatever the epoch costs, the planned search's expected time fits in what the budget leaves."""
    try:
        plan = B.plan(budget_s, costs, slots, spent_s=5.0)
    except B.BudgetTooSmall:
        assert sum(costs.values()) / len(costs) * 3 > budget_s - 5 - B.STARTUP_S - B.EXPORT_S - max(costs.values())
        return
    left = budget_s - 5.0 - B.STARTUP_S - B.EXPORT_S - max(costs.values())
    assert plan.expected_s <= left + 1e-9
    assert plan.num_samples >= 1 and plan.max_epochs in B.LADDER and plan.concurrency <= slots
    # and it does not leave most of the budget unused: one more trial would not fit
    per_trial = B.epochs_per_trial(plan.max_epochs, 1, B.REDUCTION_FACTOR) * plan.epoch_s + B.TRIAL_OVERHEAD_S
    assert plan.num_samples == B.MAX_TRIALS or (plan.num_samples + 1) * per_trial / plan.concurrency > left - per_trial


def test_a_larger_budget_buys_longer_training_and_more_trials():
    small, large = (B.plan(b, {"lstm": 5.0}, 2) for b in (120, 3600))
    assert large.max_epochs > small.max_epochs and large.num_samples > small.num_samples
    assert large.describe().startswith("budget 60m: ~")
    assert "ASHA rungs 1/3/9/27" in large.describe()
    assert large.expected_s >= 0.8 * (3600 - B.STARTUP_S - B.EXPORT_S - 5.0), "a long budget is used, not left idle"


def test_a_budget_too_small_says_how_much_is_needed():
    with pytest.raises(B.BudgetTooSmall, match="give at least"):
        B.plan(10, {"lstm": 30.0}, 1)


# ------------------------------------------------------------------------------------- inferring the task


@pytest.fixture
def files(tmp_path):
    (tmp_path / "notes.txt").write_text("The quick brown fox jumps over the lazy dog. " * 300)
    (tmp_path / "table.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 7},{'x' if i % 2 else 'y'}\n" for i in range(60)))
    (tmp_path / "series.csv").write_text("date,load,temp\n" + "".join(f"2024-01-{1 + i % 28:02d},{i},{i % 5}\n" for i in range(80)))
    return tmp_path


@pytest.mark.parametrize("args,kind,needle", [
    (["notes.txt"], "charlm", "task charlm"),
    (["table.csv", "--target", "label"], "tabular", "task tabular"),
    (["series.csv", "--forecast", "load"], "forecast", "time column date"),
])
def test_the_task_is_inferred_and_said(files, monkeypatch, capsys, args, kind, needle):
    monkeypatch.chdir(files)
    assert main(["validate", "--data", *args, "--print-config"]) == 0
    out, err = capsys.readouterr()
    assert needle in err
    config = yaml.safe_load(out)
    assert config["task"]["kind"] == kind
    assert Path(config["task"]["data"]).is_absolute()


@pytest.mark.parametrize("args,needles", [
    (["table.csv"], ["--target COLUMN", "--forecast", "columns: a, b, label"]),
    (["notes.txt", "--target", "x"], ["--target needs a CSV"]),
    (["table.csv", "--target", "nope"], ["--target nope", "columns: a, b, label"]),
    (["table.csv", "--target", "a", "--forecast", "b"], ["give one"]),
    (["missing.csv", "--target", "a"], ["file not found"]),
])
def test_ambiguous_or_wrong_data_flags_exit_2(files, monkeypatch, capsys, args, needles):
    monkeypatch.chdir(files)
    assert main(["run", "--data", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    for needle in needles:
        assert needle in err, err
    assert not (files / "runs").exists()


def test_printed_config_runs_as_a_file_and_is_the_same_experiment(files, monkeypatch, capsys):
    from orchestrator.experiment.from_data import load_for_command
    from orchestrator.experiment.load import load_experiment

    monkeypatch.chdir(files)
    assert main(["run", "--data", "series.csv", "--forecast", "load", "--budget", "2m", "--print-config"]) == 0
    (files / "printed.yaml").write_text(capsys.readouterr().out)
    from_file = load_experiment(files / "printed.yaml")
    from_flags = load_for_command(None, [], data="series.csv", target=None, forecast="load", budget="2m", name=None, storage=None,
                                  say=sys.stderr)
    assert from_file.config == from_flags.config
    assert from_file.config.budget == "2m"


def test_budget_and_time_budget_are_exclusive(files, monkeypatch, capsys):
    monkeypatch.chdir(files)
    assert main(["validate", "--data", "notes.txt", "--budget", "1m", "--set", "time_budget_s=30"]) == 2
    assert "set one" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_tiny_budget_run_ends_within_its_budget_and_exports(files, tmp_path):
    """A whole command, from a fresh process: its wall time stays within the budget (+10%) and best/ is written."""
    budget_s = 60
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--data", "notes.txt", "--budget", f"{budget_s}s", "--storage", str(tmp_path / "runs"),
         "--set", "task.seq_len=32", "--set", "resources.cpu=1"],
        cwd=files, capture_output=True, text=True, timeout=200,
    )
    wall = time.monotonic() - began
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "budget 60s: ~" in done.stdout and "trials, up to" in done.stdout
    assert "Budget:" in done.stdout
    # Trials the budget stopped mid-way count as stopped early, not as unfinished work for `resume`.
    assert "unfinished" not in done.stdout and "orchestrator resume" not in done.stdout
    assert wall <= budget_s * 1.1, f"{wall:.1f} s for a {budget_s} s budget"
    assert (tmp_path / "runs" / "notes" / "best" / "model.pt").is_file()
