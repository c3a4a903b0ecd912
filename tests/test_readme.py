"""The README's examples, run as written: the annotated experiment, the search space, the Python snippet."""

from __future__ import annotations

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
