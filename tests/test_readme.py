"""The README's examples, run as written: the annotated experiment, the search space, the Python snippet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from search_spaces import parse_space

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def block(lang: str, starts_with: str) -> str:
    for body in re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S):
        if body.lstrip().startswith(starts_with):
            return body
    raise AssertionError(f"no ```{lang} block starting with {starts_with!r} in README.md")


def test_readme_commands_use_the_pinned_install():
    assert "pip install -c constraints.txt -e ." in README
    assert "python -m pytest" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "-c constraints.txt -e '.[test]'" in ci and "python -m pytest" in ci


def test_readme_search_space_parses():
    space = parse_space(yaml.safe_load(block("yaml", "families:")), "README")
    assert set(space.families) == {"lstm", "mlp"}


@pytest.mark.timeout(240)
def test_readme_experiment_runs(tmp_path, ray_session, capsys):
    experiment = tmp_path / "forecast.yaml"
    experiment.write_text(block("yaml", "# forecast.yaml"))
    assert main(["validate", str(experiment)]) == 0
    small = ["--set", "num_samples=3", "--set", "scheduler.max_epochs=2", "--set", "scheduler.grace_period=1",
             "--set", "time_budget_s=120", "--storage", str(tmp_path / "runs")]
    assert main(["run", str(experiment), *small]) == 0
    model_path = tmp_path / "runs" / "sunspots" / "best" / "model.pt"
    assert model_path.is_file()

    # The README's Python snippet, pointed at this run's model; its charlm-only line swapped for predict().
    snippet = block("python", "from trainables import load_model")
    snippet = snippet.replace("runs/quickstart/best/model.pt", str(model_path))
    snippet = snippet.replace('print(sample_text(model, "The ", length=200))', "import numpy as np; print(model.predict(np.ones((24, 1)) * 50))")
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert model.task == "forecast" and "test_rmse" in model.metrics
    prediction = model.predict([[50.0]] * 24)
    assert prediction.shape == (1, 1) and 0 < float(prediction[0, 0]) < 400, "a sunspot number in its own units"


@pytest.mark.timeout(300)
def test_readme_own_data_loader_runs(tmp_path, ray_session):
    """The "Your own data" example as written: digits read row by row by the user's loader, searched over lstm,
    gru and mlp; the best model well above chance (10%), exported, and used on raw sequences."""
    from orchestrator.reading import results as R

    (tmp_path / "my_data.py").write_text(block("python", "# my_data.py"))
    experiment = tmp_path / "digits.yaml"
    experiment.write_text(block("yaml", "# digits.yaml"))
    assert main(["run", str(experiment), "--set", "scheduler.max_epochs=2", "--storage", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / "digits"
    assert {t.family for t in R.load_trials(run_dir)} == {"lstm", "gru", "mlp"}

    snippet = block("python", "from sklearn.datasets import load_digits").replace("runs/digits/best/model.pt", str(run_dir / "best" / "model.pt"))
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    model, images = namespace["model"], namespace["images"]
    assert model.task == "custom" and model.spec.input_kind == "sequence"
    assert model.metrics["test_accuracy"] > 0.5 and {"test_f1", "test_log_loss"} <= set(model.metrics)
    predictions = model.predict(images)
    assert predictions.shape == (5,) and set(predictions) <= set(range(10))
    assert model.predict(images[0])[0] == predictions[0], "one sequence is a batch of one"


@pytest.mark.timeout(240)
def test_readme_python_api_runs(tmp_path, ray_session, monkeypatch):
    """The README's Python API example as written, in a folder holding the README's forecast.yaml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "forecast.yaml").write_text(block("yaml", "# forecast.yaml"))
    namespace: dict = {}
    exec(compile(block("python", "import orchestrator"), "README.md", "exec"), namespace)
    run, again, curves = namespace["run"], namespace["again"], namespace["curves"]
    assert run.path == tmp_path / "runs" / "sunspots" and len(run.trials) == 3 and again.dataframe().equals(run.dataframe())
    assert namespace["best"].trial_id == json.loads((run.path / "best" / "metrics.json").read_text())["trial_id"]
    assert list(curves.index) == [1, 2] and set(curves.columns) == {t.trial_id for t in run.trials}
    assert namespace["model"].task == "forecast"


@pytest.mark.timeout(240)
def test_readme_own_model_runs(tmp_path, ray_session, monkeypatch, capsys):
    """The README's "Your own model" example as written: the user's file, the experiment, `list`, a short run, loading."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # `from my_models import Conv`, as in the user's own folder
    (tmp_path / "my_models.py").write_text(block("python", "# my_models.py"))
    (tmp_path / "conv.yaml").write_text(block("yaml", "# conv.yaml"))
    assert main(["list", "conv.yaml"]) == 0
    assert "channels: int = 16, kernel_size: int = 3" in capsys.readouterr().out
    small = ["--set", "num_samples=3", "--set", "scheduler.max_epochs=2", "--set", "searcher=random"]
    assert main(["run", "conv.yaml", *small]) == 0
    board = json.loads((tmp_path / "runs" / "conv" / "best" / "metrics.json").read_text())
    namespace: dict = {}
    exec(compile(block("python", "from my_models import Conv"), "README.md", "exec"), namespace)
    model = namespace["model"]
    assert model.family == board["family"] and model.metrics == pytest.approx(board["metrics"])
    assert model.predict([[50.0]] * 24).shape == (1, 1)
