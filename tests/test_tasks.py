"""Every task loads its built-in data offline and the user's own files, splits without leakage and
records the preprocessing an exported model needs."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.config import TASK_OPTIONS
from trainables.tasks import TASKS, DataError
from trainables.tasks.base import SPLITS


def options(kind: str, **kw):
    return TASK_OPTIONS[kind](kind=kind, **kw)


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_builtin_data_loads_offline(kind):
    data = TASKS[kind].load(options(kind))
    assert data.spec.input_kind == TASKS[kind].input_kind
    for split in SPLITS:
        assert len(data.splits[split]) > 10
        assert len(data.splits[split].x) == len(data.splits[split].y)
    assert data.metric.startswith("val_")


def test_every_task_has_an_options_model():
    assert set(TASK_OPTIONS) == set(TASKS)


def test_charlm_splits_are_contiguous_and_shifted(tmp_path):
    text = "abcdefghij" * 200
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    data = TASKS["charlm"].load(options("charlm", data=str(path), seq_len=16))
    vocab = data.preprocessing["vocab"]
    assert vocab == list("abcdefghij")
    x, y = data.splits["train"].x, data.splits["train"].y
    assert "".join(vocab[i] for i in x[0]) == text[:16]
    assert np.array_equal(x[:, 1:], y[:, :-1]), "targets are the inputs shifted by one character"


def test_forecast_user_csv_scales_with_training_statistics_only(tmp_path):
    values = np.concatenate([np.arange(80.0), np.full(20, 1000.0)])  # a jump only validation/test see
    path = tmp_path / "series.csv"
    path.write_text("t,load,temp\n" + "\n".join(f"{i},{v},{i % 7}" for i, v in enumerate(values)))
    data = TASKS["forecast"].load(options("forecast", data=str(path), time_column="t", targets=["load"], window=5))
    assert data.preprocessing["columns"] == ["load", "temp"]
    assert data.spec.in_features == 2 and data.spec.out_features == 1
    assert data.preprocessing["mean"][0] < 100, "the mean must not include validation/test values"
    assert data.objective["scale"] == [pytest.approx(data.preprocessing["std"][0])]


def test_tabular_string_labels_and_regression(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{x:.3f},{y:.3f},{'yes' if x > y else 'no'}" for x, y in rng.normal(size=(60, 2))]
    path = tmp_path / "cls.csv"
    path.write_text("\n".join(rows))
    data = TASKS["tabular"].load(options("tabular", data=str(path), target="label"))
    assert data.preprocessing["problem"] == "classification" and data.preprocessing["labels"] == ["no", "yes"]
    assert data.metric == "val_accuracy" and data.mode == "max"

    rows = ["a,price"] + [f"{x:.3f},{3 * x + 0.5:.4f}" for x in rng.normal(size=60)]
    path = tmp_path / "reg.csv"
    path.write_text("\n".join(rows))
    data = TASKS["tabular"].load(options("tabular", data=str(path), target="price"))
    assert data.preprocessing["problem"] == "regression" and data.metric == "val_rmse"


def test_csv_errors_name_the_column_and_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(DataError, match=r"column 'b' .* row 3 holds 'x'"):
        TASKS["tabular"].load(options("tabular", data=str(path), target="a"))
