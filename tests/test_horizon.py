"""Forecast horizons: `task.horizon: H` forecasts the next H steps of each target jointly; metrics average over the
horizon, persistence covers the same steps, and an exported model's `predict` gives (N, H, targets) in units."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from orchestrator.cli import main
from trainables.baselines import compute_baselines
from trainables.tasks import TASKS
from trainables.tasks.base import DATA_DIR, split_sizes

WINDOW, H = 24, 3


def sunspots() -> np.ndarray:
    return pd.read_csv(DATA_DIR / "sunspots.csv")["sunspots"].to_numpy(dtype=np.float64)


def split_starts(n_values: int) -> dict[str, np.ndarray]:
    """Each split's window starts: chronological, the last H - 1 of training and validation left out (their
    targets would run into the next split)."""
    n = n_values - WINDOW - H + 1
    n_train, n_val, _ = split_sizes(n, 0.15, 0.15, source="test")
    return {"train": np.arange(0, n_train - H + 1), "val": np.arange(n_train, n_train + n_val - H + 1),
            "test": np.arange(n_train + n_val, n)}


def test_a_horizon_gives_h_outputs_per_target_and_persistence_over_the_same_steps():
    data = TASKS["forecast"].load(TASKS["forecast"].options(kind="forecast", window=WINDOW, horizon=H))
    values, starts = sunspots(), split_starts(len(sunspots()))
    assert data.spec.out_features == H and {k: len(v) for k, v in data.splits.items()} == {k: len(v) for k, v in starts.items()}
    # Persistence, computed here on the raw series: every step of the horizon is the window's last value.
    for split in ("val", "test"):
        s = starts[split]
        truth = np.stack([values[s + WINDOW + h] for h in range(H)], axis=1)  # (N, H)
        error = truth - values[s + WINDOW - 1][:, None]
        found = compute_baselines(data)["persistence"]
        assert found[f"{split}_rmse"] == pytest.approx(math.sqrt(np.mean(error**2)), rel=1e-5)
    one = TASKS["forecast"].load(TASKS["forecast"].options(kind="forecast", window=WINDOW))
    assert one.spec.out_features == 1 and round(compute_baselines(one)["persistence"]["val_rmse"], 2) == 31.31


def test_horizon_on_the_command_line_goes_with_forecast(capsys):
    assert main(["validate", "--horizon", "3"]) == 2
    assert "--horizon goes with --data FILE --forecast COL" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_exported_horizon_model_predicts_h_steps_in_units(tmp_path, ray_session, capsys):
    from trainables import load_model

    config = {"name": "h3", "task": {"kind": "forecast", "window": WINDOW, "horizon": H},
              "search_space": {"families": {"mlp": {"hidden_size": 32}}, "train": {"lr": 0.005}},
              "num_samples": 1, "scheduler": {"kind": "fifo", "max_epochs": 3}, "storage": str(tmp_path / "runs")}
    path = tmp_path / "h3.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path)]) == 0
    run_dir = tmp_path / "runs" / "h3"
    model = load_model(run_dir / "best" / "model.pt")
    values, starts = sunspots(), split_starts(len(sunspots()))
    s = starts["test"]
    rows = np.stack([values[i:i + WINDOW] for i in s])[..., None]  # (N, T, 1) raw values
    predicted = model.predict(rows)
    assert predicted.shape == (len(s), H, 1)
    truth = np.stack([values[s + WINDOW + h] for h in range(H)], axis=1)  # (N, H)
    test_rmse = math.sqrt(np.mean((predicted[..., 0] - truth) ** 2))
    metrics = json.loads((run_dir / "best" / "metrics.json").read_text())["metrics"]
    assert metrics["test_rmse"] == pytest.approx(test_rmse, rel=1e-4)
    # The error at each step of the horizon, as `best`, the summary and the report show it.
    per_step = json.loads((run_dir / "best" / "metrics.json").read_text())["per_step"]
    direct = np.sqrt(np.mean((predicted[..., 0] - truth) ** 2, axis=0))
    assert per_step["test_rmse"] == pytest.approx(direct.tolist(), rel=1e-4) and len(per_step["val_mae"]) == H
    assert main(["best", str(run_dir)]) == 0
    assert "rmse at each step of the horizon (validation / test)" in capsys.readouterr().out
    baselines = json.loads((run_dir / "baselines.json").read_text())["baselines"]
    assert "persistence" in baselines and baselines["persistence"]["test_rmse"] > 0


def test_the_seasonal_naive_baseline_repeats_the_last_season():
    """task.season 11 (the sunspot cycle, in years): each of the 3 steps takes the value 11 years before it."""
    data = TASKS["forecast"].load(TASKS["forecast"].options(kind="forecast", window=WINDOW, horizon=H, season=11))
    values, s = sunspots(), split_starts(len(sunspots()))["val"]
    truth = np.stack([values[s + WINDOW + h] for h in range(H)], axis=1)
    seasonal = np.stack([values[s + WINDOW + h - 11] for h in range(H)], axis=1)
    found = compute_baselines(data)["seasonal naive"]
    assert found["val_rmse"] == pytest.approx(math.sqrt(np.mean((truth - seasonal) ** 2)), rel=1e-5)
    assert "seasonal naive" not in compute_baselines(TASKS["forecast"].load(TASKS["forecast"].options(kind="forecast", window=WINDOW)))
