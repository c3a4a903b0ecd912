"""The docs' examples, run as written: the README's annotated experiment and its snippet, the reference's search
space and points, the own-data and own-model pages' files, and the Python API page.

A block is found by the page it is in and its first line; docs/contributing.md lists which blocks are run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from search_spaces import parse_space

ROOT = Path(__file__).resolve().parent.parent
README = "README.md"
REFERENCE = "docs/experiment-file.md"
OWN = "docs/own-data-and-models.md"
RESULTS = "docs/using-results.md"


def page(name: str) -> str:
    return (ROOT / name).read_text()


def block(name: str, lang: str, starts_with: str) -> str:
    """The first ```lang block of page `name` whose text starts with `starts_with`."""
    for body in re.findall(rf"```{lang}\n(.*?)```", page(name), flags=re.S):
        if body.lstrip().startswith(starts_with):
            return body
    raise AssertionError(f"no ```{lang} block starting with {starts_with!r} in {name}")


def run_snippet(name: str, code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, name, "exec"), namespace)
    return namespace


def test_readme_commands_use_the_pinned_install():
    readme = page(README)
    assert "pip install -c constraints.txt -e ." in readme
    assert "python -m pytest" in readme and 'python -m pytest -m "not slow"' in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-c constraints.txt -e '.[test]'" in ci and "python -m pytest" in ci


def test_reference_search_space_parses():
    space = parse_space(yaml.safe_load(block(REFERENCE, "yaml", "families:")), REFERENCE)
    assert set(space.families) == {"lstm", "mlp"}


@pytest.mark.parametrize("name", [README, REFERENCE])
def test_points_to_evaluate_are_points_of_a_space(name):
    """The points as the README and the reference write them (tests/test_search.py checks the README's too)."""
    from search_spaces.points import parse_points

    space = parse_space({"families": {"mlp": {"hidden_size": {"choice": [32, 64]}}, "gru": {"hidden_size": {"choice": [32, 64]}}},
                         "train": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}, "batch_size": {"choice": [32, 64]}}}, "test")
    configs = parse_points(yaml.safe_load(block(name, "yaml", "points_to_evaluate:"))["points_to_evaluate"], space, name)
    assert [c["arch"]["family"] for c in configs] == ["mlp", "gru"]


@pytest.mark.timeout(240)
def test_readme_experiment_runs(tmp_path, ray_session, capsys):
    experiment = tmp_path / "forecast.yaml"
    experiment.write_text(block(README, "yaml", "# forecast.yaml"))
    assert main(["validate", str(experiment)]) == 0
    small = ["--set", "num_samples=3", "--set", "scheduler.max_epochs=2", "--set", "scheduler.grace_period=1",
             "--set", "time_budget_s=120", "--storage", str(tmp_path / "runs")]
    assert main(["run", str(experiment), *small]) == 0
    run_dir = tmp_path / "runs" / "sunspots"
    model_path = run_dir / "best" / "model.pt"
    assert model_path.is_file()

    # The README's Python snippet, pointed at this run; its charlm-only line swapped for predict().
    snippet = block(README, "python", "import orchestrator\nfrom trainables import load_model")
    snippet = snippet.replace("runs/quickstart/best/model.pt", str(model_path)).replace("runs/quickstart", str(run_dir))
    snippet = snippet.replace('print(sample_text(model, "The ", length=200))', "import numpy as np; print(model.predict(np.ones((24, 1)) * 50))")
    namespace = run_snippet(README, snippet)
    model = namespace["model"]
    assert model.task == "forecast" and "test_rmse" in model.metrics
    prediction = model.predict([[50.0]] * 24)
    assert prediction.shape == (1, 1) and 0 < float(prediction[0, 0]) < 400, "a sunspot number in its own units"
    best = json.loads((run_dir / "best" / "metrics.json").read_text())
    assert namespace["run"].best_trial.trial_id == best["trial_id"] and len(namespace["trials"]) == 3


@pytest.mark.timeout(300)
def test_own_data_loader_runs(tmp_path, ray_session):
    """The own-data page's loader example as written: digits read row by row by the user's loader, searched over
    lstm, gru and mlp; the best model well above chance (10%), exported, and used on raw sequences."""
    from orchestrator.reading import results as R

    (tmp_path / "my_data.py").write_text(block(OWN, "python", "# my_data.py"))
    experiment = tmp_path / "digits.yaml"
    experiment.write_text(block(OWN, "yaml", "# digits.yaml"))
    assert main(["run", str(experiment), "--set", "scheduler.max_epochs=2", "--storage", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / "digits"
    assert {t.family for t in R.load_trials(run_dir)} == {"lstm", "gru", "mlp"}

    snippet = block(OWN, "python", "from sklearn.datasets import load_digits").replace("runs/digits/best/model.pt", str(run_dir / "best" / "model.pt"))
    namespace = run_snippet(OWN, snippet)
    model, images = namespace["model"], namespace["images"]
    assert model.task == "custom" and model.spec.input_kind == "sequence"
    assert model.metrics["test_accuracy"] > 0.5 and {"test_f1", "test_log_loss"} <= set(model.metrics)
    predictions = model.predict(images)
    assert predictions.shape == (5,) and set(predictions) <= set(range(10))
    assert model.predict(images[0])[0] == predictions[0], "one sequence is a batch of one"


@pytest.mark.timeout(240)
def test_python_api_runs(tmp_path, ray_session, monkeypatch):
    """The results page's Python API example as written, in a folder holding the README's forecast.yaml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "forecast.yaml").write_text(block(README, "yaml", "# forecast.yaml"))
    namespace = run_snippet(RESULTS, block(RESULTS, "python", "import orchestrator\n\n# A YAML path"))
    run, again, curves = namespace["run"], namespace["again"], namespace["curves"]
    assert run.path == tmp_path / "runs" / "sunspots" and len(run.trials) == 3 and again.dataframe().equals(run.dataframe())
    assert namespace["best"].trial_id == json.loads((run.path / "best" / "metrics.json").read_text())["trial_id"]
    assert list(curves.index) == [1, 2] and set(curves.columns) == {t.trial_id for t in run.trials}
    assert namespace["model"].task == "forecast"
    assert namespace["other"].num_params > 0 and namespace["front"] and (tmp_path / "small.pt").is_file()


@pytest.mark.timeout(240)
def test_own_model_runs(tmp_path, ray_session, monkeypatch, capsys):
    """The own-model example as written: the user's file, the experiment, `list`, a short run, loading."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # `from my_models import Conv`, as in the user's own folder
    (tmp_path / "my_models.py").write_text(block(OWN, "python", "# my_models.py"))
    (tmp_path / "conv.yaml").write_text(block(OWN, "yaml", "# conv.yaml"))
    assert main(["list", "conv.yaml"]) == 0
    assert "channels: int = 16, kernel_size: int = 3" in capsys.readouterr().out
    small = ["--set", "num_samples=3", "--set", "scheduler.max_epochs=2", "--set", "searcher=random"]
    assert main(["run", "conv.yaml", *small]) == 0
    board = json.loads((tmp_path / "runs" / "conv" / "best" / "metrics.json").read_text())
    namespace = run_snippet(OWN, block(OWN, "python", "from my_models import Conv"))
    model = namespace["model"]
    assert model.family == board["family"] and model.metrics == pytest.approx(board["metrics"])
    assert model.predict([[50.0]] * 24).shape == (1, 1)
