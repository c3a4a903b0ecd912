"""Every registered task: its record is complete and consistent, its built-in data loads offline into the
shapes its spec promises, and an exported model's `predict` inverts its preprocessing. Then the details of
each task: splits without leakage, the user's own files, errors that name the column and row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from orchestrator.experiment.config import TASK_OPTIONS
from trainables.constants import VAL_LOSS
from trainables.export import ExportedModel, load_model, save_model
from trainables.models import build_model, families_for
from trainables.objectives import Objective
from trainables.tasks import TASKS, DataError, metric_modes
from trainables.tasks.base import SPLITS, TaskBase

REPO = Path(__file__).resolve().parent.parent
KINDS = sorted(TASKS)
PREDICTING = sorted(name for name, task in TASKS.items() if task.predict is not None)
TINY = {"hidden_size": 8, "num_layers": 1}
# The options a task cannot do without: a custom task has no built-in data, so it reads the tests' own loader.
REQUIRED = {"custom": {"loader": f"{REPO / 'tests' / 'data' / 'digit_rows.py'}:load"}}


def options(kind: str, **kw):
    return TASKS[kind].options(kind=kind, **{**REQUIRED.get(kind, {}), **kw})


@pytest.fixture(scope="module")
def builtin():
    """Each task's built-in data, loaded once for the module (the loads are the slow part)."""
    return {kind: TASKS[kind].load(options(kind)) for kind in KINDS}


def exported(kind: str, data, module: nn.Module | None = None) -> ExportedModel:
    """An ExportedModel of a tiny untrained model (or of `module`) for a loaded task."""
    family = families_for(data.spec.input_kind)[0]
    torch.manual_seed(0)
    module = module if module is not None else build_model(family, TINY, data.spec).eval()
    return ExportedModel(module, family, TINY, data.spec, kind, data.metric, {}, data.preprocessing, data.objective)


def raw_inputs(data, n: int = 5) -> np.ndarray:
    """The first `n` test inputs in the data file's own units (undoing the loader's standardization)."""
    p = data.preprocessing
    return data.splits["test"].x[:n] * np.asarray(p["std"], np.float32) + np.asarray(p["mean"], np.float32)


# ---- every task record -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_record_is_complete(kind):
    task = TASKS[kind]
    assert task.name == kind
    assert issubclass(task.options, TaskBase)
    assert options(kind).kind == kind, "options must be constructible from the kind alone (and REQUIRED)"
    assert task.metrics and set(task.metrics.values()) <= {"min", "max"}
    assert all(metric.startswith("val_") and metric_modes()[metric] == mode for metric, mode in task.metrics.items())
    assert (REPO / "search_spaces" / f"{task.default_space}.yaml").is_file()
    # input_kind None: the data decides (a custom loader's arrays), and any family may fit.
    assert task.description and (task.input_kind is None or families_for(task.input_kind))


@pytest.mark.parametrize("kind", KINDS)
def test_builtin_data_loads_offline_in_the_spec_shapes(kind, builtin):
    data, spec = builtin[kind], builtin[kind].spec
    assert data.kind == kind and TASKS[kind].input_kind in (None, spec.input_kind)
    classification = Objective(data.objective).classification
    for split in SPLITS:
        x, y = data.splits[split].x, data.splits[split].y
        n = len(x)
        assert n > 10 and len(y) == n
        expected_x = {"tokens": (n, spec.seq_len), "sequence": (n, spec.seq_len, spec.in_features), "vector": (n, spec.in_features)}
        assert x.shape == expected_x[spec.input_kind]
        if spec.per_step:
            assert y.shape == (n, spec.seq_len)
        else:
            assert y.shape == ((n,) if classification else (n, spec.out_features))
        if classification:
            # Token ids stay in their compact dtype (widened per batch on the device); class labels are int64.
            assert y.dtype == (np.uint8 if spec.input_kind == "tokens" else np.int64)
            assert 0 <= y.min() and y.max() < spec.out_features


@pytest.mark.parametrize("kind", KINDS)
def test_metric_is_one_of_the_records_with_its_mode(kind, builtin):
    data, task = builtin[kind], TASKS[kind]
    assert data.metric in task.metrics and data.mode == task.metrics[data.metric]
    assert data.metric == next(iter(task.metrics)), "the first metric is the one the built-in data reports"
    assert data.metric == data.metrics[0] and set(data.metrics) <= set(task.metrics), "every metric reported is declared"


def test_metric_modes_gather_every_task_without_conflict():
    modes = metric_modes()
    assert modes[VAL_LOSS] == "min"
    for task in TASKS.values():
        for metric, mode in task.metrics.items():
            assert modes[metric] == mode, f"{task.name} ranks {metric} by {mode}, another task the other way"


def test_config_task_options_come_from_the_registry():
    assert TASK_OPTIONS == {name: task.options for name, task in TASKS.items()}


@pytest.mark.parametrize("kind", PREDICTING)
def test_predict_on_raw_rows_survives_export(kind, builtin, tmp_path):
    data = builtin[kind]
    model, rows = exported(kind, data), raw_inputs(data)
    predictions = model.predict(rows)
    assert len(predictions) == len(rows)
    assert np.array_equal(model.predict(rows[0])[0], predictions[0]), "one row is a batch of one"
    path = tmp_path / "model.pt"
    save_model(path, family=model.family, model_config=TINY, train_config={}, spec=data.spec, task=kind,
               objective=data.objective, metric=data.metric, preprocessing=data.preprocessing, metrics={},
               state_dict=model.module.state_dict())
    assert np.array_equal(load_model(path).predict(rows), predictions)
    assert TASKS[kind].usage(path) == []


class Oracle(nn.Module):
    """A 'model' that outputs fixed values, whatever it is given: the targets, as the training loop sees them."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = nn.Parameter(out, requires_grad=False)

    def forward(self, x):
        return self.out


def test_forecast_predict_undoes_the_scaling(builtin):
    data = builtin["forecast"]
    y = data.splits["test"].y[:5]  # (N, O), standardized
    p = data.preprocessing
    idx = [p["columns"].index(t) for t in p["targets"]]
    raw_targets = y * np.asarray(p["std"], np.float32)[idx] + np.asarray(p["mean"], np.float32)[idx]
    model = exported("forecast", data, Oracle(torch.from_numpy(y)))
    assert np.allclose(model.predict(raw_inputs(data)), raw_targets)
    # The target after one window is the input's last step in the next window.
    assert np.allclose(raw_targets[:-1, 0], raw_inputs(data)[1:, -1, idx[0]], rtol=1e-5)


def test_tabular_predict_gives_labels_and_values_in_the_data_units(builtin, tmp_path):
    data = builtin["tabular"]
    y = data.splits["test"].y[:5]
    model = exported("tabular", data, Oracle(nn.functional.one_hot(torch.from_numpy(y), data.spec.out_features).float()))
    assert list(model.predict(raw_inputs(data))) == [data.preprocessing["labels"][i] for i in y]

    data = TASKS["tabular"].load(options("tabular", problem="regression"))
    y = data.splits["test"].y[:5]  # (N, 1)
    model = exported("tabular", data, Oracle(torch.from_numpy(y)))
    p = data.preprocessing
    assert np.allclose(model.predict(raw_inputs(data)), y[:, 0] * p["target_std"] + p["target_mean"])


def test_charlm_has_no_predict_and_says_how_to_sample(builtin):
    model = exported("charlm", builtin["charlm"])
    with pytest.raises(ValueError, match="use sample_text for 'charlm'"):
        model.predict([[1, 2, 3]])
    [(label, text)] = TASKS["charlm"].usage("best/model.pt")
    assert label == "Sample text" and text == "orchestrator sample best/model.pt --prompt 'The '"


def test_tasks_import_no_torch():
    """Validating a config and reading a run need the task records, but never torch."""
    code = "import sys, trainables.tasks; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---- each task's details ---------------------------------------------------------------------------------


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
    assert data.preprocessing["problem"] == "regression" and data.metric == "val_rmse" and data.mode == "min"


def test_csv_errors_name_the_column_and_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(DataError, match=r"column 'b' .* row 3 holds 'x'"):
        TASKS["tabular"].load(options("tabular", data=str(path), target="a"))
