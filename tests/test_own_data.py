"""Bringing your own data: a Python loader (`task: {kind: custom, loader: FILE.py:FUNCTION}`), real-world CSVs
(comment lines, gaps, text columns, string labels) and the metrics each problem reports, checked against
scikit-learn. The loader example of docs/own-data-and-models.md (digits read row by row, searched over lstm, gru and mlp, exported
and used on raw sequences) runs in tests/test_readme.py."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn import metrics as skm

from orchestrator.cli import main
from trainables import load_model
from trainables.objectives import Objective
from trainables.tasks import TASKS, DataError
from trainables.training import (
    DeviceData,
    TrialConfig,
    build_trial,
    run_epoch,
    split_metrics,
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def custom(loader: str, **options) -> object:
    return TASKS["custom"].options(kind="custom", loader=loader, **options)


# ---- the metrics, against scikit-learn on a fixed prediction ----------------------------------------------


def sums_of(objective: Objective, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """A split's results from two batches, as the evaluation accumulates them."""
    return objective.results(objective.sums(out[:7], y[:7]) + objective.sums(out[7:], y[7:]))


def test_classification_metrics_match_scikit_learn():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 5, generator=g) * 2  # (N, C)
    y = torch.randint(0, 4, (20,), generator=g)  # class 4 never a target; some classes never predicted
    results = sums_of(Objective({"name": "accuracy"}), logits, y)
    pred, probs = logits.argmax(-1).numpy(), torch.softmax(logits.double(), -1).numpy()
    assert results["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert results["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert results["log_loss"] == pytest.approx(skm.log_loss(y, probs, labels=range(5)), rel=1e-5)
    assert results["loss"] == results["log_loss"]


def test_regression_metrics_are_in_the_data_units_and_match_scikit_learn():
    g = torch.Generator().manual_seed(1)
    out, y = torch.randn(20, 1, generator=g), torch.randn(20, 1, generator=g)  # standardized
    scale, offset = 3.0, 10.0
    results = sums_of(Objective({"name": "rmse", "scale": [scale], "offset": [offset]}), out, y)
    truth, pred = (y * scale + offset).numpy().ravel(), (out * scale + offset).numpy().ravel()
    assert results["rmse"] == pytest.approx(skm.root_mean_squared_error(truth, pred), rel=1e-5)
    assert results["mae"] == pytest.approx(skm.mean_absolute_error(truth, pred), rel=1e-5)
    assert results["mape"] == pytest.approx(skm.mean_absolute_percentage_error(truth, pred), rel=1e-5)


def test_language_model_metrics_are_bits_per_character_and_perplexity():
    g = torch.Generator().manual_seed(2)
    logits, y = torch.randn(4, 5, 6, generator=g), torch.randint(0, 6, (4, 5), generator=g)  # (B, T, V)
    results = sums_of(Objective({"name": "bpc"}), logits, y)
    nats = skm.log_loss(y.reshape(-1), torch.softmax(logits.double(), -1).reshape(-1, 6).numpy(), labels=range(6))
    assert results["bpc"] == pytest.approx(nats / math.log(2), rel=1e-5)
    assert results["perplexity"] == pytest.approx(math.exp(nats), rel=1e-5)


@pytest.mark.parametrize("name, reference", [("mse", torch.nn.functional.mse_loss), ("l1", torch.nn.functional.l1_loss),
                                             ("huber", torch.nn.functional.huber_loss)])
def test_regression_loss_is_chosen_by_the_task(name, reference):
    g = torch.Generator().manual_seed(3)
    out, y = torch.randn(8, 2, generator=g) * 3, torch.randn(8, 2, generator=g)
    objective = Objective({"name": "rmse", "scale": [1.0, 1.0], "loss": name})
    assert float(objective.loss(out, y)) == pytest.approx(float(reference(out, y)))
    assert objective.results(objective.sums(out, y))["loss"] == pytest.approx(float(reference(out, y)), rel=1e-5)


# ---- loaders ----------------------------------------------------------------------------------------------

TOKENS = """
    import numpy as np

    def load(n=600, length=12, seed=0):
        # Text classification: a sentence (token ids 1..9) is positive when it holds more 7s than 3s.
        rng = np.random.default_rng(seed)
        x = rng.integers(1, 10, size=(n, length))
        y = ((x == 7).sum(1) > (x == 3).sum(1)).astype(np.int64)
        return {"train": (x[:400], y[:400]), "val": (x[400:500], y[400:500]), "test": (x[500:], y[500:]),
                "vocab_size": 10, "classes": ["negative", "positive"]}
"""


def test_token_loader_trains_a_text_classifier(tmp_path):
    write(tmp_path, "text.py", TOKENS)
    data = TASKS["custom"].load(custom(f"{tmp_path / 'text.py'}:load"))
    assert data.spec.input_kind == "tokens" and data.spec.in_features == 10 and data.spec.out_features == 2
    assert data.splits["train"].x.dtype == np.int64 and data.preprocessing["labels"] == ["negative", "positive"]
    # The same loop the trainable drives, in process: a small GRU learns the rule within a few epochs.
    staged, objective = DeviceData.stage(data, torch.device("cpu")), Objective(data.objective)
    config = TrialConfig.from_tune({"arch": {"family": "gru", "model": {"hidden_size": 32}}, "lr": 0.01, "batch_size": 32})
    state = build_trial(config, data.spec, torch.device("cpu"), seed=0, max_epochs=4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a trial with 1 CPU does: more threads than free cores is many times slower
    try:
        results = [run_epoch(state, staged, objective, "val_accuracy") for _ in range(4)]
    finally:
        torch.set_num_threads(threads)
    assert {"val_accuracy", "val_f1", "val_log_loss"} <= set(results[-1])
    assert max(r["val_accuracy"] for r in results) > 0.75, "well above the majority class"
    assert split_metrics(state.model, staged, "test", objective)["test_accuracy"] > 0.7


def test_loader_without_a_test_split_has_it_carved_from_train_and_says_so(tmp_path):
    write(tmp_path, "rows.py", """
        import numpy as np
        import torch

        def load():
            rng = np.random.default_rng(0)
            x = rng.normal(size=(200, 3))
            y = torch.as_tensor(x @ [1.0, -2.0, 0.5] + 4)  # tensors are taken as they are
            return {"train": (torch.as_tensor(x[:160]), y[:160]), "val": (x[160:], y[160:])}
    """)
    data = TASKS["custom"].load(custom(f"{tmp_path / 'rows.py'}:load", test_fraction=0.1))
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [140, 40, 20]
    assert "no 'test' split from the loader: 20 samples of train held out" in data.summary()
    assert data.preprocessing["problem"] == "regression" and data.metric == "val_rmse"
    assert data.objective["offset"] == [pytest.approx(data.preprocessing["target_mean"][0])]
    # predict takes raw rows and answers in the targets' units: a module that outputs the standardized test
    # targets must give back x @ w + 4 of the raw test rows.
    p, test = data.preprocessing, data.splits["test"]
    raw_x = test.x * np.asarray(p["std"]) + np.asarray(p["mean"])
    oracle = torch.nn.Linear(1, 1)
    oracle.forward = lambda x: torch.from_numpy(test.y)  # (N, 1) standardized, whatever the input
    from trainables.export import ExportedModel

    model = ExportedModel(oracle, "mlp", {}, data.spec, "custom", data.metric, {}, p, data.objective)
    assert np.allclose(model.predict(raw_x), raw_x @ [1.0, -2.0, 0.5] + 4, atol=1e-4)


def test_loader_gets_the_data_path_and_text_labels_come_back_from_predict(tmp_path, capsys):
    write(tmp_path, "points.py", """
        import numpy as np

        def load(data, scale=1.0):
            x = np.loadtxt(data, delimiter=",") * scale
            y = np.where(x[:, 0] > x[:, 1], "left", "right")
            return {"train": (x[:40], y[:40]), "val": (x[40:50], y[40:50]), "test": (x[50:], y[50:])}
    """)
    np.savetxt(tmp_path / "points.csv", np.random.default_rng(0).normal(size=(60, 2)), delimiter=",")
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(yaml.safe_dump({"task": {"kind": "custom", "loader": "points.py:load", "data": "points.csv",
                                                   "scale": 2.0}, "storage": str(tmp_path / "runs")}))
    assert main(["validate", str(experiment)]) == 0, capsys.readouterr().err
    data = TASKS["custom"].load(custom(f"{tmp_path / 'points.py'}:load", data=str(tmp_path / "points.csv")))
    assert data.preprocessing["labels"] == ["left", "right"] and data.spec.input_kind == "vector"
    from trainables.export import ExportedModel
    from trainables.models import build_model

    module = build_model("mlp", {"hidden_size": 4}, data.spec).eval()
    model = ExportedModel(module, "mlp", {}, data.spec, "custom", data.metric, {}, data.preprocessing, data.objective)
    assert set(model.predict([[1.0, 0.0], [0.0, 1.0]])) <= {"left", "right"}


LOADER_ERRORS = {
    "file not found": ("", "missing.py:load", "task.loader: file not found: '{dir}/missing.py'"),
    "function not found": ("def other():\n    pass\n", "bad.py:load", "has no function 'load'; functions there: other"),
    "wrong return type": ("def load():\n    return [1, 2]\n", "bad.py:load", "must return a dict {'train': (x, y)"),
    "mismatched lengths": ("import numpy as np\ndef load():\n    return {'train': (np.zeros((5, 2)), np.zeros(4))}\n",
                           "bad.py:load", "mismatched lengths in 'train': x has 5 samples, y has 4"),
    "NaN in x": ("import numpy as np\ndef load():\n    x = np.zeros((50, 2)); x[3, 1] = np.nan\n"
                 "    return {'train': (x, np.arange(50) % 2)}\n", "bad.py:load", "x of 'train' holds nan at index (3, 1)"),
    "labels out of range": ("import numpy as np\ndef load():\n    return {'train': (np.zeros((50, 2)), np.arange(50) % 3),"
                            " 'classes': ['a', 'b']}\n", "bad.py:load", "label 2 is out of range: class ids must be 0..1"),
    "problem inconsistent with y": ("import numpy as np\ndef load():\n    return {'train': (np.zeros((50, 2)), np.linspace(0, 1, 50))}\n",
                                    "bad.py:load", "classification needs integer class ids, but y of 'train' holds"),
    "exception inside the loader": ("import numpy as np\n\ndef load():\n    data = {}\n    return data['train']\n",
                                    "bad.py:load", "raised KeyError: 'train' (at {dir}/bad.py, line 5, in load: `return data['train']`)"),
    "exception importing the loader's file": ("import numpy as np\nraise RuntimeError('no data today')\n", "bad.py:load",
                                              "raised RuntimeError: no data today (at {dir}/bad.py, line 2, in <module>"),
    "unknown option": ("def load(size=3):\n    pass\n", "bad.py:load", "task.sise: unknown key: neither a task option nor a parameter"),
    "required parameter": ("def load(rows):\n    pass\n", "bad.py:load", "(a parameter without a default); give task.rows a value"),
}


def test_a_loaders_required_parameter_is_told_to_a_data_user_as_the_set_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "bad.py", LOADER_ERRORS["required parameter"][0])
    assert main(["validate", "--data", "bad.py:load"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data bad.py:load: task.rows: required by") and err.endswith(
        "(a parameter without a default); add --set task.rows=VALUE\n"), err


@pytest.mark.parametrize("case", sorted(LOADER_ERRORS))
def test_each_loader_error_exits_2_with_one_clear_line(case, tmp_path, capsys):
    code, loader, message = LOADER_ERRORS[case]
    if code:
        write(tmp_path, "bad.py", code)
    task = {"kind": "custom", "loader": loader, "problem": "classification" if "problem" in case else "auto"}
    if case == "unknown option":
        task["sise"] = 4
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(yaml.safe_dump({"task": task, "storage": str(tmp_path / "runs")}))
    assert main(["validate", str(experiment)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {experiment}: ") and err.count("\n") == 1, err
    assert message.replace("{dir}", str(tmp_path)) in err
    assert not (tmp_path / "runs").exists()


# ---- real-world CSVs --------------------------------------------------------------------------------------

SERIES = "# hourly load, exported 2024-01-02\nt,load\n" + "\n".join(
    f"{i},{'' if i in (5, 6, 30) else 100 + i}" for i in range(80)
)


def test_forecast_csv_with_a_comment_and_gaps_interpolates_or_names_the_first_gap(tmp_path, capsys):
    path = tmp_path / "load.csv"
    path.write_text(SERIES)
    data = TASKS["forecast"].load(TASKS["forecast"].options(kind="forecast", data=str(path), time_column="t", window=4, missing="interpolate"))
    p = data.preprocessing
    raw = data.splits["train"].x[:3, :, 0] * p["std"][0] + p["mean"][0]  # the straight line through the gap
    assert np.allclose(raw[2], [102, 103, 104, 105], atol=1e-3)
    assert set(data.metrics) == {"val_rmse", "val_mae", "val_mape"}

    experiment = tmp_path / "exp.yaml"
    experiment.write_text(yaml.safe_dump({"task": {"kind": "forecast", "data": "load.csv", "time_column": "t", "window": 4},
                                          "storage": str(tmp_path / "runs")}))
    assert main(["validate", str(experiment)]) == 2
    # Line 8 of the file: the comment and the header come first.
    assert "has an empty cell in column 'load', row 8; set task.missing to drop, ffill or interpolate" in capsys.readouterr().err
    assert main(["validate", str(experiment), "--set", "task.missing=interpolate"]) == 0


def test_csv_missing_policies(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n" + "1,2,x\n,3,y\n4,,x\n5,6,y\n" * 6)
    table = lambda **kw: TASKS["tabular"].load(TASKS["tabular"].options(kind="tabular", data=str(path), target="label", **kw))
    assert sum(len(s) for s in table(missing="drop").splits.values()) == 12
    assert sum(len(s) for s in table(missing="ffill").splits.values()) == 24
    with pytest.raises(ValueError, match="'error', 'drop' or 'ffill'"):  # interpolating is for series: refused in the config
        table(missing="interpolate")
    path.write_text("a,b,label\n" + ",2,x\n1,3,y\n" * 10)
    with pytest.raises(DataError, match="'ffill' cannot fill column 'a', row 2 .* no value above it"):
        table(missing="ffill")


def tabular_csv(path: Path) -> None:
    """A CSV with a comment line, a text feature column and text labels: the colour decides the fruit."""
    rng = np.random.default_rng(0)
    rows = ["# fruit survey", "weight,colour,fruit"]
    for _ in range(240):
        colour = rng.choice(["red", "green", "yellow"])
        fruit = {"red": "apple", "green": "pear", "yellow": "banana"}[colour]
        rows.append(f"{rng.normal(150, 20):.1f},{colour},{fruit}")
    path.write_text("\n".join(rows))


@pytest.mark.timeout(240)
def test_tabular_text_column_and_string_labels_train_and_predict_strings(tmp_path, ray_session):
    tabular_csv(tmp_path / "fruit.csv")
    data = TASKS["tabular"].load(TASKS["tabular"].options(kind="tabular", data=str(tmp_path / "fruit.csv"), target="fruit"))
    assert data.preprocessing["categories"] == {"colour": ["green", "red", "yellow"]} and data.spec.in_features == 4
    assert data.preprocessing["labels"] == ["apple", "banana", "pear"]
    experiment = tmp_path / "fruit.yaml"
    experiment.write_text(yaml.safe_dump({
        "name": "fruit", "task": {"kind": "tabular", "data": "fruit.csv", "target": "fruit"},
        "search_space": {"families": {"mlp": {"hidden_size": 32, "num_layers": 1}}, "train": {"lr": 0.02, "batch_size": 32}},
        "searcher": "random", "scheduler": {"kind": "fifo", "max_epochs": 3}, "num_samples": 2, "max_concurrent": 2,
        "metric": "val_f1", "storage": str(tmp_path / "runs"),
    }))
    assert main(["run", str(experiment)]) == 0
    run = tmp_path / "runs" / "fruit"
    model = load_model(run / "best" / "model.pt")
    assert list(model.predict([[150.0, "red"], [140.0, "yellow"], [160.0, "green"]])) == ["apple", "banana", "pear"]
    assert {"test_accuracy", "test_f1", "test_log_loss"} <= set(model.metrics)
    import pandas as pd

    frame = pd.DataFrame({"colour": ["yellow", "red"], "weight": [140.0, 150.0]})  # by name, in any order
    assert list(model.predict(frame)) == ["banana", "apple"]
    with pytest.raises(ValueError, match="column 'colour': 'blue' is not a category seen in training"):
        model.predict([150.0, "blue"])
    # Every metric of the task, every epoch: in result.json and in TensorBoard's event files.
    best = json.loads((run / "best" / "metrics.json").read_text())
    assert best["metric"] == "val_f1" and best["mode"] == "max"
    rows = [json.loads(line) for line in (Path(best["trial_dir"]) / "result.json").read_text().splitlines()]
    assert all({"val_accuracy", "val_f1", "val_log_loss"} <= set(r) for r in rows) and len(rows) == 3
    events = b"".join(p.read_bytes() for p in Path(best["trial_dir"]).glob("events.out.tfevents.*"))
    assert b"val_f1" in events and b"val_log_loss" in events and b"val_accuracy" in events
