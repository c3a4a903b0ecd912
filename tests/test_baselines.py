"""Every task's baselines, checked against direct computations on the raw data, and shown beside the result: the
run's baselines.json, the summary, `best` and `best --json`, and `load_run(...).baselines`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from orchestrator.watch.console import baseline_lines
from trainables.baselines import BASELINES, compute_baselines
from trainables.tasks import TASKS
from trainables.tasks.base import DATA_DIR, split_sizes


def _load(kind: str, **options):
    task = TASKS[kind]
    return task.load(task.options(kind=kind, **options))


def test_persistence_on_sunspots_matches_a_direct_computation():
    """Window 24: the persistence baseline is val RMSE 31.31 and test 30.15, as "next year equals this year" on the
    raw series gives it over the same chronological splits."""
    found = compute_baselines(_load("forecast", window=24))["persistence"]
    values = pd.read_csv(DATA_DIR / "sunspots.csv").drop(columns=["year"]).to_numpy(dtype=np.float64)[:, 0]
    window, n = 24, len(values) - 24
    n_train, n_val, _ = split_sizes(n, 0.15, 0.15, source="test")
    targets = np.arange(window, len(values))  # the step each window forecasts
    errors = values[targets] - values[targets - 1]
    val, test = errors[n_train:n_train + n_val], errors[n_train + n_val:]
    assert found["val_rmse"] == pytest.approx(math.sqrt(np.mean(val**2)), rel=1e-5)
    assert found["test_rmse"] == pytest.approx(math.sqrt(np.mean(test**2)), rel=1e-5)
    assert (round(found["val_rmse"], 2), round(found["test_rmse"], 2)) == (31.31, 30.15)
    assert found["val_mae"] == pytest.approx(np.mean(np.abs(val)), rel=1e-5)


def test_unigram_bpc_is_the_cross_entropy_of_the_training_character_frequencies():
    """The unigram baseline of the quickstart corpus: bits per character of the validation text under the training
    text's character frequencies (add-one smoothed), computed here directly from the counts."""
    data = _load("charlm")
    found = compute_baselines(data)
    vocab = data.spec.out_features
    counts = np.bincount(data.splits["train"].y.reshape(-1), minlength=vocab) + 1.0
    p = counts / counts.sum()
    val = data.splits["val"].y.reshape(-1)
    assert found["unigram"]["val_bpc"] == pytest.approx(-np.mean(np.log2(p[val])), rel=1e-5)
    # Near the training text's own entropy (the validation text is drawn from the same documentation).
    entropy = -np.sum(p * np.log2(p))
    assert abs(found["unigram"]["val_bpc"] - entropy) < 0.2
    assert found["bigram"]["val_bpc"] < found["unigram"]["val_bpc"], "the previous character tells something"


def test_majority_and_linear_on_the_digits_table():
    data = _load("tabular")
    found = compute_baselines(data)
    train, val = data.splits["train"].y, data.splits["val"].y
    majority = np.bincount(train).argmax()
    assert found["majority"]["val_accuracy"] == pytest.approx(np.mean(val == majority))
    assert found["linear"]["val_accuracy"] > 0.9, "a linear model separates the digits well"
    assert set(found) == {"majority", "linear"}


def test_linear_regression_recovers_a_linear_target(tmp_path):
    """A regression table whose target is linear in its features plus noise of std 0.1: the linear baseline's
    RMSE is the noise, the mean baseline's the target's spread."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.1 * rng.normal(size=2000)
    path = tmp_path / "linear.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}).to_csv(path, index=False)
    found = compute_baselines(_load("tabular", data=str(path), target="y"))
    assert found["linear"]["val_rmse"] == pytest.approx(0.1, rel=0.15)
    assert found["mean"]["val_rmse"] == pytest.approx(math.sqrt(13), rel=0.1)


def test_every_baseline_applies_to_some_bundled_task():
    applied = {name for kind in ("forecast", "tabular", "charlm") for name in compute_baselines(_load(kind))}
    applied |= set(compute_baselines(_load("forecast", season=11)))  # the sunspot cycle
    assert applied == set(BASELINES)


def test_baseline_lines_say_how_much_better_or_warn():
    baselines = {"persistence": {"val_rmse": 31.31, "test_rmse": 30.15}, "mean": {"val_rmse": 54.65, "test_rmse": 52.8}}
    lines = baseline_lines(baselines, "val_rmse", "min", 18.2)
    assert lines[0] == "baselines (val_rmse validation / test): persistence 31.31 / 30.15, mean 54.65 / 52.8"
    assert lines[1] == "the best model's val_rmse 18.2 is 42% below the best baseline, persistence (31.31)"
    worse = baseline_lines(baselines, "val_rmse", "min", 35.0)[1]
    assert worse.startswith("warning: the best model's val_rmse 35 does not beat the persistence baseline (31.31)")
    accuracy = baseline_lines({"majority": {"val_accuracy": 0.1}, "linear": {"val_accuracy": 0.95}}, "val_accuracy", "max", 0.97)
    assert accuracy[1] == "the best model's val_accuracy 0.97 is 0.02 above the best baseline, linear (0.95)"
    assert baseline_lines({}, "val_rmse", "min", 1.0) == [] and len(baseline_lines(baselines, "val_rmse", "min", None)) == 1


def test_a_run_shows_its_baselines_in_best_the_json_and_the_api(finished_run, capsys):
    """The tiny charlm run: baselines.json holds unigram and bigram, `best` prints them beside the leaderboard,
    `best --json` and `load_run(...).baselines` carry the same numbers."""
    import orchestrator
    from orchestrator.cli import main

    stored = json.loads((finished_run / "baselines.json").read_text())
    assert stored["metric"] == "val_bpc" and set(stored["baselines"]) == {"unigram", "bigram"}
    assert main(["best", str(finished_run)]) == 0
    out = capsys.readouterr().out
    assert f"baselines (val_bpc validation / test): unigram {stored['baselines']['unigram']['val_bpc']:.4g}" in out
    assert main(["best", str(finished_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baselines"] == stored["baselines"]
    assert orchestrator.load_run(finished_run).baselines == stored["baselines"]
