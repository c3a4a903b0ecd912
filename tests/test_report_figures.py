"""The report's figures read at a glance: metric axes set by the values that matter (a few diverged trials are
clipped at the edge and counted), the task's baseline drawn as a line, and parallel coordinates per family.

No Ray: the runs here are synthetic run directories, written the way the reading layer reads them
(experiment.yaml, and per trial params.json and result.json), with values chosen for what each test checks.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from orchestrator.reading import results as R
from orchestrator.reading.report import build_report, render_html
from orchestrator.reading.report.figures import LOG_DECADES, metric_limits
from trainables import constants as C

EPOCHS = 5
T0 = 1_700_000_000.0
SPACE = {
    "families": {
        "mlp": {"hidden_size": {"choice": [16, 32, 64]}, "context": {"choice": [4, 8]}},
        "gru": {"hidden_size": {"choice": [16, 32]}, "num_layers": {"choice": [1, 2]}},
    },
    "train": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}, "batch_size": 32},
}
BASELINES = {"metric": "val_rmse", "mode": "min", "baselines": {"persistence": {"val_rmse": 31.3, "test_rmse": 30.2}}}


# ---- (a) the limits, on numbers


def test_limits_leave_out_two_diverged_values_and_count_them_clipped():
    rng = np.random.default_rng(0)
    values = list(rng.uniform(0.4, 2.0, 40)) + [320.0, 250.0]
    lim = metric_limits(values)
    assert lim["above"] == 2 and lim["below"] == 0 and lim["log"] is False
    assert 2.0 <= lim["high"] < 2.5 and 0.25 < lim["low"] <= 0.4, lim  # the values 0.4-2 and a margin, nothing near 250
    assert all(lim["low"] <= v <= lim["high"] for v in values[:-2])


def test_limits_keep_the_best_value_and_the_baseline_in_view():
    values = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 320.0]
    lim = metric_limits(values, keep=[0.9, 8.0, None])
    assert lim["low"] < 0.9 and lim["high"] > 8.0 and lim["above"] == 1 and lim["log"] is False


def test_limits_of_a_series_spanning_decades_are_logarithmic():
    values = list(np.logspace(-3, 1, 30))  # 4 decades, evenly: no value is an outlier on a log scale
    lim = metric_limits(values)
    assert lim["log"] is True and lim["above"] == lim["below"] == 0
    assert lim["low"] < 1e-3 and lim["high"] > 10
    narrow = metric_limits(list(np.linspace(1.0, 10 ** (LOG_DECADES - 0.2), 30)))
    assert narrow["log"] is False, "a range within LOG_DECADES stays linear"


def test_limits_ignore_nan_inf_and_the_divergence_penalty():
    values = [float("nan"), float("inf"), -float("inf"), C.DIVERGED_PENALTY, 1.0, 1.1, 1.2, 1.3]
    lim = metric_limits(values)
    assert lim == metric_limits([1.0, 1.1, 1.2, 1.3])
    assert lim["above"] == lim["below"] == 0 and 0.9 < lim["low"] < 1.0 and 1.3 < lim["high"] < 1.4
    assert metric_limits([float("nan")]) == {"low": None, "high": None, "log": False, "above": 0, "below": 0}


def test_limits_of_metrics_with_negative_values_are_linear_and_still_robust():
    values = [0.6, 0.62, 0.65, 0.7, 0.71, 0.72, 0.75, 0.8, -300.0]  # an R^2-like metric (max) with one collapse
    lim = metric_limits(values)
    assert lim["log"] is False and lim["below"] == 1 and lim["low"] > 0.5


# ---- (b)-(d) a synthetic forecast run: two families, two trials that diverged early


def _rows(values: list[float], start: float, diverged_at: int | None = None) -> list[dict]:
    rows = []
    for i, v in enumerate(values, 1):
        row = {"training_iteration": i, C.RMSE: v, "timestamp": start + 2.0 * i, "time_this_iter_s": 2.0,
               "time_since_restore": 2.0 * i, "iterations_since_restore": i, "done": False}
        if diverged_at == i:
            row.update({C.RMSE: C.DIVERGED_PENALTY, C.DIVERGED: True})
        rows.append(row)
    rows[-1]["done"] = True
    return rows


def write_run(root: Path, *, baselines: dict | None = None) -> Path:
    """A finished fifo forecast run: 6 mlp and 5 gru trials whose val_rmse falls from ~2 to 0.47-0.9, and two
    mlp trials that diverged early (320 and 250 at epoch 1, then NaN, reported as the penalty)."""
    run = root / "forecast"
    run.mkdir(parents=True)
    experiment = {"name": "forecast", "task": {"kind": "forecast"}, "search_space": SPACE, "searcher": "random",
                  "scheduler": {"kind": "fifo", "max_epochs": EPOCHS}, "num_samples": 13, "max_concurrent": 1,
                  "metric": C.RMSE, "mode": "min", "storage": str(root), "seed": 0}
    (run / R.EXPERIMENT_FILE).write_text(yaml.safe_dump(experiment, sort_keys=False))
    if baselines is not None:
        (run / R.BASELINES_FILE).write_text(json.dumps(baselines))
    rng = np.random.default_rng(1)
    start = T0
    for k in range(13):
        family = "mlp" if k < 8 else "gru"
        model = ({"hidden_size": int(rng.choice([16, 32, 64])), "context": int(rng.choice([4, 8]))} if family == "mlp"
                 else {"hidden_size": int(rng.choice([16, 32])), "num_layers": int(rng.choice([1, 2]))})
        config = {"arch": {"family": family, "model": model}, "lr": float(10 ** rng.uniform(-4, -2)), "batch_size": 32}
        if k in (2, 5):  # diverged early
            rows = _rows([320.0 if k == 2 else 250.0, math.nan], start, diverged_at=2)
        else:
            final = 0.47 if k == 9 else float(rng.uniform(0.5, 0.9))
            rows = _rows([float(final + (2.0 - final) * (1 - e / (EPOCHS - 1)) ** 2) for e in range(EPOCHS)], start)
        trial = run / f"{family}_{k:05d}"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps(config))
        (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        start = rows[-1]["timestamp"] + 1.0
    return run


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_run(tmp_path, baselines=BASELINES)


@pytest.fixture
def plain_run(tmp_path) -> Path:
    return write_run(tmp_path)


METRIC_SECTIONS = ("best-so-far", "learning-curves", "families", "parallel-coordinates")


def test_metric_axes_are_set_by_the_trials_that_did_not_diverge(plain_run):
    model = build_report(plain_run)
    assert model["summary"]["status_counts"][R.DIVERGED] == 2
    for sid in METRIC_SECTIONS:
        lim = model[sid]["ylim"]
        assert lim["log"] is False and lim["above"] == 2 and lim["below"] == 0, (sid, lim)
        assert lim["low"] <= 0.47 and lim["high"] < 2.5, (sid, lim)  # 0.47 (the best) to 2 (epoch 1): not 320
    # The best-so-far line starts at the first trial's 2.0, is never clipped, and ends at the best value in view.
    best = model["best-so-far"]
    assert best["value"][-1] == 0.47 and all(best["ylim"]["low"] < v < best["ylim"]["high"] for v in best["value"])
    page = render_html(model)
    for sid in METRIC_SECTIONS:
        section = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S).group(1)
        assert re.search(r"2 \w+( \w+)? above the axis, clipped", section), f"{sid}: the caption counts the clipped values"


def test_baseline_line_is_drawn_and_kept_in_view(run_dir):
    model = build_report(run_dir)
    page = render_html(model)
    for sid in ("best-so-far", "learning-curves"):
        data = model[sid]
        assert data["baseline"] == {"name": "persistence", "value": 31.3}
        # 31.3 is 1.8 decades above the best 0.47: kept in view, the axis turns logarithmic; 320 and 250 stay clipped.
        assert data["ylim"]["high"] > 31.3 and data["ylim"]["log"] is True and data["ylim"]["above"] == 2
        section = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S).group(1)
        assert "best baseline, persistence, at val_rmse 31.3" in section


def test_no_baseline_line_without_baselines_json(plain_run):
    model = build_report(plain_run)
    page = render_html(model)
    for sid in ("best-so-far", "learning-curves", "families"):
        assert model[sid]["baseline"] is None
    text = re.sub(r'src="data:[^"]*"', "", page).replace(str(plain_run.resolve()), "")  # the words, not the images nor the path
    assert "baseline" not in text.lower()


def test_a_baseline_of_other_metrics_only_draws_no_line(tmp_path):
    run = write_run(tmp_path, baselines={"metric": "val_mae", "mode": "min", "baselines": {"mean": {"val_mae": 3.0}}})
    assert build_report(run)["best-so-far"]["baseline"] is None


def test_parallel_coordinates_have_one_panel_per_family_and_no_missing_axis(plain_run):
    par = build_report(plain_run)["parallel-coordinates"]
    trials = {t.trial_id: t for t in R.load_trials(plain_run)}
    assert [p["family"] for p in par["panels"]] == ["gru", "mlp"], "best family first; both have 3 or more scored trials"
    assert par["skipped"] == {}
    for panel in par["panels"]:
        names = [a["name"] for a in panel["axes"]]
        assert "family" not in names and "lr" in names and "batch_size" not in names  # batch_size is a constant
        own, other = {"mlp": ("model/context", "model/num_layers"), "gru": ("model/num_layers", "model/context")}[panel["family"]]
        assert own in names and other not in names, "a family's own hyperparameters, never another family's"
        for line in panel["trials"]:
            hp = trials[line["trial_id"]].hparams()
            assert trials[line["trial_id"]].family == panel["family"]
            assert None not in line["values"] and line["values"] == [hp[n] for n in names]
    assert sum(len(p["trials"]) for p in par["panels"]) == 13, "every trial with a value, diverged ones with their first epoch's"


def test_a_family_with_too_few_trials_is_named_not_drawn(tmp_path):
    run = write_run(tmp_path)
    for trial in sorted(run.glob("gru_*"))[2:]:
        for f in trial.iterdir():
            f.unlink()
        trial.rmdir()
    model = build_report(run)
    par = model["parallel-coordinates"]
    assert [p["family"] for p in par["panels"]] == ["mlp"] and par["skipped"] == {"gru": 2}
    assert "fewer than 3 trials with a value: gru (2)" in render_html(model)
