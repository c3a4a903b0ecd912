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


# ------------------------------------------------------------------ sample size as a fidelity (large data)

# Measured on a 28 MB text corpus (2 cores, 1 thread a trial): a whole training pass of each family of the charlm
# space, one validation of the search's validation sample, the export's evaluation of validation and test, and
# what the command spent before the plan (loading, baselines, Ray, the probe).
BIG_PASS = {"lstm": 1100.0, "gru": 1300.0, "rnn": 600.0, "transformer": 600.0, "mlp": 800.0}
BIG_VALIDATE = {"lstm": 6.5, "gru": 8.0, "rnn": 3.5, "transformer": 3.0, "mlp": 8.0}
BIG_STEPS, BIG_EXPORT, BIG_SPENT = 7300, 26.0, 25.0


def _fits(plan, budget_s, costs, validate, spent, export_s):
    """The planned search, with the costliest epoch in reserve, fits in what the budget leaves."""
    f = plan.fraction
    reserve = max(costs[k] * f + validate.get(k, 0.0) for k in costs)
    return plan.expected_s + reserve <= budget_s - spent - B.STARTUP_S - export_s + 1e-6


def test_a_3m_budget_on_a_large_corpus_plans_short_epochs():
    """A pass over the data costs ~1000 s, the budget 3 minutes: the epoch shrinks to a sample that fits, and the
    header says what an epoch is."""
    plan = B.plan(180, BIG_PASS, 2, spent_s=BIG_SPENT, steps=BIG_STEPS, validate_costs=BIG_VALIDATE, export_s=BIG_EXPORT)
    assert plan.steps_per_epoch is not None and B.MIN_STEPS <= plan.steps_per_epoch < BIG_STEPS * 0.1
    assert plan.fraction == pytest.approx(plan.steps_per_epoch / BIG_STEPS)
    assert plan.max_epochs >= 3 and plan.num_samples >= B.least_trials(plan.max_epochs, 2)
    assert _fits(plan, 180, BIG_PASS, BIG_VALIDATE, BIG_SPENT, BIG_EXPORT)
    note = plan.sample_note()
    assert f"an epoch here is {plan.steps_per_epoch} steps, " in note and "% of the training data" in note
    assert f"{plan.max_epochs} such epochs at the last rung" in note


@pytest.mark.parametrize("budget_s", [60, 180, 600, 3600, 4 * 3600])
@pytest.mark.parametrize("slots", [1, 2, 8])
def test_short_epoch_plans_fit_their_budget(budget_s, slots):
    try:
        plan = B.plan(budget_s, BIG_PASS, slots, spent_s=BIG_SPENT, steps=BIG_STEPS, validate_costs=BIG_VALIDATE, export_s=BIG_EXPORT)
    except B.BudgetTooSmall:
        assert budget_s <= 60
        return
    assert _fits(plan, budget_s, BIG_PASS, BIG_VALIDATE, BIG_SPENT, BIG_EXPORT)
    assert plan.num_samples >= 2 and plan.max_epochs in B.LADDER
    if plan.steps_per_epoch is not None:
        assert B.MIN_STEPS <= plan.steps_per_epoch < BIG_STEPS
        # an epoch trains at least as long as it validates, unless a single epoch is all the budget holds
        assert plan.max_epochs == 1 or plan.epoch_s >= 2 * sum(BIG_VALIDATE.values()) / len(BIG_VALIDATE)


def test_longer_budgets_buy_larger_samples_then_whole_passes():
    fractions = [B.plan(b, BIG_PASS, 2, spent_s=BIG_SPENT, steps=BIG_STEPS, validate_costs=BIG_VALIDATE, export_s=BIG_EXPORT).fraction
                 for b in (180, 600, 3600, 6 * 3600)]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] < 0.05


def test_small_data_keeps_whole_passes():
    plan = B.plan(600, {"lstm": 2.0, "mlp": 0.5}, 2, steps=100, validate_costs={"lstm": 0.1, "mlp": 0.1})
    assert plan.steps_per_epoch is None and plan.fraction == 1.0 and plan.sample_note() == ""
    assert plan.max_epochs >= B.SHORT_LADDER_TOP


def test_only_a_budget_without_room_for_two_short_trials_is_refused_and_the_named_budget_works():
    with pytest.raises(B.BudgetTooSmall, match="give at least") as refused:
        B.plan(40, BIG_PASS, 2, spent_s=BIG_SPENT, steps=BIG_STEPS, validate_costs=BIG_VALIDATE, export_s=BIG_EXPORT)
    needed = B.parse_duration(str(refused.value).rsplit("give at least ", 1)[1])
    plan = B.plan(needed, BIG_PASS, 2, spent_s=BIG_SPENT, steps=BIG_STEPS, validate_costs=BIG_VALIDATE, export_s=BIG_EXPORT)
    assert plan.num_samples >= 2 and B.MIN_STEPS <= plan.steps_per_epoch < 2 * B.MIN_STEPS


def test_the_ceiling_lets_the_time_budget_end_the_search():
    """The trial count a budgeted search is given holds far more trials than planned, bounded by the time."""
    plan = B.plan(180, {"mlp": 0.2}, 2, steps=40, validate_costs={"mlp": 0.05})
    costs = B.Costs({"mlp": 0.2}, {"mlp": 0.05}, 40, 0.0)
    many = B.ceiling(plan, costs, 160)
    assert many > 2 * plan.num_samples and many <= 160 * 2 / (0.25 + B.TRIAL_OVERHEAD_S / 2) + 1
    assert B.ceiling(plan, costs, 160, population=True) == max(2 * plan.num_samples, plan.num_samples + 4)


def test_short_epochs_take_new_samples_and_cover_the_data_each_pass():
    import torch

    from trainables.training import short_epoch_order

    n, size = 1000, 64
    epochs = [short_epoch_order(7, n, e, size) for e in range(32)]
    seen = torch.cat(epochs)
    assert len(set(seen[:n].tolist())) == n, "one pass: every sample once"
    assert not set(epochs[0].tolist()) & set(epochs[1].tolist()), "successive short epochs, new samples"
    assert short_epoch_order(7, n, 5, size).tolist() == epochs[5].tolist(), "a function of the epoch: resumes the same"
    assert short_epoch_order(8, n, 0, size).tolist() != epochs[0].tolist()



# ------------------------------------------------------------------------------ the budget is used


def _budget_run(cwd: Path, storage: Path, budget_s: int, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "orchestrator", "run", *args, "--budget", f"{budget_s}s", "--storage", str(storage),
                           "--set", "resources.cpu=1"], cwd=cwd, capture_output=True, text=True, timeout=budget_s * 3)
    return done, time.monotonic() - began


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_budget_run_uses_its_budget_when_the_planned_trials_run_out_early(files, tmp_path):
    """A tiny series whose trials take about a second: the plan's trials would end long before the budget, so the
    search goes on with more trials until the time budget ends it; the whole command ends within +10% of the
    budget and uses at least 80% of it, and the summary says how the time was spent."""
    budget_s = 45
    done, wall = _budget_run(files, tmp_path / "runs", budget_s, "--data", "series.csv", "--forecast", "load")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    planned = int(done.stdout.split("budget 45s: ~", 1)[1].split(" trials", 1)[0])
    given = int(done.stdout.split("; the ", 1)[1].split(" trials above are a ceiling", 1)[0])
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("Budget:"))
    assert "start-up" in line and "searching (" in line and "export" in line, line
    # The time budget, not the trial count, ended the search: trials enough for a probe off by far more than 2x.
    assert given > 2 * planned and "ended before the budget" not in done.stdout
    assert 0.8 * budget_s <= wall <= 1.1 * budget_s, f"{wall:.1f} s for a {budget_s} s budget"
    # Trials the budget stopped mid-way count as stopped early, not as unfinished work for `resume`; best/ is written.
    assert "unfinished" not in done.stdout and "orchestrator resume" not in done.stdout
    assert (tmp_path / "runs" / "series" / "best" / "model.pt").is_file()


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_finite_space_ends_early_and_says_why(files, tmp_path):
    """Two distinct configurations cannot fill a budget: the search ends when both ran, and the summary says so."""
    (files / "tiny.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "task": {"kind": "forecast", "data": "series.csv", "targets": ["load"], "time_column": "date", "window": 4},
        "search_space": {"families": {"mlp": {"hidden_size": {"choice": [8, 16]}}}, "train": {"lr": 0.01}},
        "warm_start": "none", "budget": "60s"}))
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "orchestrator", "run", "tiny.yaml", "--storage", str(tmp_path / "runs"),
                           "--set", "resources.cpu=1"], cwd=files, capture_output=True, text=True, timeout=180)
    wall = time.monotonic() - began
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the search ended before the budget (60s): the space has 2 distinct configurations and each ran once" in done.stdout
    assert wall < 60
