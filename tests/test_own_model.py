"""A user's own nn.Module as a searched family (`model: file.py:Class`): every validation case with its
message, a search beside built-in families on forecast and on charlm (trials, leaderboard, HParams, export,
load, predict / sample, the reported metric re-evaluated), `orchestrator list EXPERIMENT.yaml`, a class
object from Python, and `load_model`'s rules against crafted model files. The users' files are written here."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from orchestrator.cli import main
from orchestrator.reading import results as R

MY_MODELS = textwrap.dedent('''
    """Models of the user's own."""
    from typing import Literal

    import torch
    import torch.nn.functional as F
    from torch import nn


    class Conv(nn.Module):
        """A 1-D CNN over the window, pooled to one prediction."""

        def __init__(self, spec, channels: int = 16, kernel_size: int = 3, pool: Literal["mean", "max"] = "mean"):
            super().__init__()
            self.conv = nn.Conv1d(spec.in_features, channels, kernel_size, padding=kernel_size // 2)
            self.head = nn.Linear(channels, spec.out_features)
            self.pool = pool

        def forward(self, x):  # (B, T, F)
            h = torch.relu(self.conv(x.transpose(1, 2)))  # (B, C, T)
            return self.head(h.mean(-1) if self.pool == "mean" else h.amax(-1))  # (B, O)


    class CausalConv(nn.Module):
        """A causal CNN language model: position t sees characters t-k+1..t."""

        def __init__(self, spec, channels: int = 32, kernel_size: int = 4, embed_dim: int = 16):
            super().__init__()
            self.k = kernel_size
            self.embed = nn.Embedding(spec.in_features, embed_dim)
            self.conv = nn.Conv1d(embed_dim, channels, kernel_size)
            self.head = nn.Linear(channels, spec.out_features)

        def forward(self, x):  # (B, T)
            h = F.pad(self.embed(x).transpose(1, 2), (self.k - 1, 0))  # (B, E, T+k-1)
            return self.head(torch.relu(self.conv(h)).transpose(1, 2))  # (B, T, V)


    class Plain:
        pass
''')

BAD_MODELS = textwrap.dedent('''
    from torch import nn


    class NeedsWidth(nn.Module):
        def __init__(self, spec, width: int, depth: int = 2):
            super().__init__()


    class Explodes(nn.Module):
        def __init__(self, spec, width: int = 4):
            super().__init__()
            raise RuntimeError("this model refuses to be built")


    class WrongShape(nn.Module):
        def __init__(self, spec, width: int = 4):
            super().__init__()
            self.lin = nn.Linear(spec.in_features, width)

        def forward(self, x):
            return self.lin(x)  # (B, T, width): not one prediction per sample
''')

BROKEN = "import torch\nfrom torch import nn\nimport numpyy  # a typo\n"


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's folder: their model files, beside which experiments are written."""
    (tmp_path / "my_models.py").write_text(MY_MODELS)
    (tmp_path / "bad_models.py").write_text(BAD_MODELS)
    (tmp_path / "broken.py").write_text(BROKEN)
    return tmp_path


def experiment(folder: Path, families: dict, **top) -> Path:
    config = {"name": "own", "task": {"kind": "forecast"}, "search_space": {"families": families},
              "num_samples": 1, "scheduler": {"max_epochs": 1}, "storage": str(folder / "runs"), **top}
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def user_module(path: Path, name: str):
    """The user's file imported the way a notebook would (`from my_models import Conv`)."""
    if name in sys.modules and Path(sys.modules[name].__file__) == path:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONV = {"model": "my_models.py:Conv", "channels": {"choice": [8, 16]}}
# (id, the conv family's sub-space, substrings of the one error line)
BAD = [
    ("file-not-found", {"model": "nope.py:Conv"}, ["families.conv.model", "'nope.py:Conv'", "file not found", "nope.py"]),
    ("module-not-found", {"model": "no_such_pkg.models:Conv"}, ["families.conv.model", "no module named 'no_such_pkg.models'"]),
    ("class-not-found", {"model": "my_models.py:Conf"}, ["no class 'Conf' in my_models.py; classes there: CausalConv, Conv, Plain"]),
    ("not-a-module", {"model": "my_models.py:Plain"}, ["'my_models.py:Plain'", "Plain is not a torch.nn.Module subclass"]),
    ("not-a-reference", {"model": 42}, ["families.conv.model", "must be FILE.py:Class"]),
    ("unknown-hyperparameter", {**CONV, "chanels": 8}, ["families.conv.chanels", "unknown hyperparameter for conv", "known: channels, kernel_size, pool"]),
    ("required-not-set", {"model": "bad_models.py:NeedsWidth", "depth": 3}, ["families.conv", "'width' of NeedsWidth has no default", "must set it"]),
    ("wrong-type", {**CONV, "channels": {"choice": [8.5]}}, ["families.conv", "channels must be an int, but got 8.5"]),
    ("wrong-literal", {**CONV, "pool": "sum"}, ["families.conv", "pool must be one of mean, max, but got 'sum'"]),
    ("import-error", {"model": "broken.py:X"}, ["families.conv.model", "broken.py, line 3: ModuleNotFoundError: No module named 'numpyy'"]),
    ("build-fails", {"model": "bad_models.py:Explodes"}, ["families.conv", "bad_models.py, line 13: RuntimeError: this model refuses to be built"]),
    ("wrong-shape", {"model": "bad_models.py:WrongShape"}, ["families.conv", "forward must return a tensor of shape (2, 1)", "returned (2, 24, 4)"]),
]


@pytest.mark.parametrize("case,family,expected", BAD, ids=[c[0] for c in BAD])
def test_a_bad_model_is_refused_before_anything_runs(project, capsys, case, family, expected):
    path = experiment(project, {"conv": family, "lstm": {"hidden_size": 8}})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    assert main(["run", str(path)]) == 2
    assert not (project / "runs").exists(), "a rejected experiment writes nothing"


def test_a_user_family_may_not_take_a_built_in_name(project, capsys):
    assert main(["validate", str(experiment(project, {"lstm": {"model": "my_models.py:Conv"}}))]) == 2
    assert "families.lstm.model: value 'my_models.py:Conv': 'lstm' is a built-in family" in capsys.readouterr().err


def test_list_shows_the_experiments_families_with_types_and_defaults(project, capsys):
    assert main(["list", str(experiment(project, {"conv": CONV}))]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "my_models.py:Conv" in lines["conv"] and "A 1-D CNN over the window, pooled to one prediction" in lines["conv"]
    assert "channels: int = 16, kernel_size: int = 3, pool: Literal['mean', 'max'] = 'mean'" in lines["conv"]
    assert "d_model: int = 64" in lines["transformer"] and "hidden_size: int = 128" in lines["lstm"]


def test_a_class_object_from_python_is_a_family(project):
    """A notebook passes the class itself; the run directory then records it as `module:Class`."""
    from search_spaces import load_space
    from trainables.models import registry_for
    from trainables.tasks.base import ModelSpec

    Conv = user_module(project / "my_models.py", "my_models").Conv
    space = load_space({"families": {"conv": {"model": Conv, "channels": {"choice": [4, 8]}}}})
    assert space.models == {"conv": Conv} and space.raw["families"]["conv"]["model"] == "my_models:Conv"
    module = registry_for(space.models)["conv"].build({"channels": 4}, ModelSpec("sequence", 1, 1, seq_len=24))
    assert isinstance(module, Conv) and module(torch.randn(2, 24, 1)).shape == (2, 1)


@pytest.mark.timeout(180)
def test_a_class_from_python_runs_through_the_api(project, ray_session, monkeypatch):
    """`orchestrator.run` with the class itself; the workers (whose path lacks the user's folder) get its code
    with the class, and the run directory names it `module:Class`."""
    import importlib

    import orchestrator
    from trainables import load_model

    (project / "notebook_models.py").write_text(MY_MODELS)
    monkeypatch.syspath_prepend(str(project))  # a notebook beside its models: `from notebook_models import Conv`
    Conv = importlib.import_module("notebook_models").Conv
    run = orchestrator.run({"name": "nb", "task": {"kind": "forecast"}, "searcher": "grid", "num_samples": 1, "storage": str(project / "runs"),
                            "search_space": {"families": {"conv": {"model": Conv, "channels": {"grid": [4, 8]}}}},
                            "scheduler": {"kind": "fifo", "max_epochs": 1}})
    trials = R.load_trials(run.path)
    assert len(trials) == 2 and all(t.family == "conv" and t.epochs == 1 and not t.error for t in trials)
    assert R.read_experiment(run.path)["search_space"]["families"]["conv"]["model"] == "notebook_models:Conv"
    model = load_model(run.path / R.BEST_DIR / R.MODEL_FILE, model_class=Conv)
    assert isinstance(model.module, Conv) and model.model_config["channels"] in (4, 8)


def test_a_finished_runs_space_is_read_without_importing_the_users_file_or_torch(tmp_path):
    """Readers of a run (best, report) parse its space as text: the user's file is not imported, nor torch."""
    import subprocess

    code = ("import sys\nfrom search_spaces import SearchSpace\n"
            "s = SearchSpace.from_run({'families': {'conv': {'model': '/nowhere/my_models.py:Conv', 'channels': {'choice': [4, 8]}}}})\n"
            "print(s.models, s.model_files(), 'model/channels' in s.hparam_names(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'conv': '/nowhere/my_models.py:Conv'} ['/nowhere/my_models.py'] True False"


def _conv_trials(run_dir: Path, family: str) -> list:
    return [t for t in R.load_trials(run_dir) if t.config["arch"]["family"] == family]


def _hparams(trial_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    acc = EventAccumulator(str(trial_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    return start.hparams, {h.name: h.type for h in experiment.hparam_infos}


@pytest.mark.timeout(240)
def test_a_users_cnn_searched_beside_lstm_on_forecast(project, ray_session, capsys):
    from orchestrator.running.best_model import export_best
    from orchestrator.running.prepare import experiment_from_run, prepare
    from trainables import load_model
    from trainables.objectives import Objective
    from trainables.training import DeviceData, evaluate

    # A grid: every family is tried whatever the draw (4 conv trials and 2 lstm ones).
    families = {"conv": {"model": "my_models.py:Conv", "channels": {"grid": [8, 16]}, "kernel_size": {"grid": [3, 5]},
                         "pool": {"choice": ["mean", "max"]}},
                "lstm": {"hidden_size": {"grid": [8, 16]}}}
    path = experiment(project, families, searcher="grid", num_samples=1, max_concurrent=2,
                      scheduler={"kind": "asha", "max_epochs": 3, "grace_period": 1, "reduction_factor": 2})
    assert main(["run", str(path)]) == 0
    run_dir = project / "runs" / "own"
    capsys.readouterr()
    assert main(["best", str(run_dir), "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    convs = [t for t in board["trials"] if t["hyperparameters"]["family"] == "conv"]
    assert convs and {"model/channels", "model/kernel_size", "model/pool"} <= set(convs[0]["hyperparameters"])
    assert any(t["hyperparameters"]["family"] == "lstm" for t in board["trials"])
    assert all(t["epochs"] >= 1 for t in board["trials"])

    assert any(t["status"] == "stopped early" for t in board["trials"]), "ASHA stopped no trial"
    assert main(["best", str(run_dir)]) == 0
    assert "conv channels=" in capsys.readouterr().out, "the leaderboard shows the user's own hyperparameters"
    assert main(["report", str(run_dir)]) == 0  # its families and hyperparameters sections name the user's
    html = (run_dir / "report.html").read_text()
    assert "conv" in html and "model/channels" in html

    trials = _conv_trials(run_dir, "conv")
    values, types = _hparams(trials[0].path)
    assert values["model/channels"].number_value == trials[0].config["arch"]["model"]["channels"]
    assert values["model/pool"].string_value in ("mean", "max")
    assert types["model/channels"] != types["model/pool"], "an int hint is a number column, a Literal of str a text one"

    # The best conv checkpoint, exported as a search's best would be; it names the class, not its code.
    p = prepare(experiment_from_run(run_dir))
    out = project / "conv.pt"
    best = export_best(run_dir, p.data, p.metric, p.mode, out_path=out, trials=trials)
    with pytest.raises(ValueError, match=r"my_models:Conv, code from outside this package.*model_class=Conv.*trust_code=True"):
        load_model(out)
    Conv = user_module(project / "my_models.py", "my_models").Conv
    model = load_model(out, model_class=Conv)
    assert isinstance(model.module, Conv) and model.family == "conv"
    assert model.predict([[50.0]] * 24).shape == (1, 1)
    staged = DeviceData.stage(p.data, torch.device("cpu"))
    _, test_rmse = evaluate(model.module, staged, "test", Objective(p.data.objective))
    assert test_rmse == pytest.approx(best.metrics["test_rmse"], rel=1e-4)
    reported = next(r[p.metric] for r in best.trial.rows if r["training_iteration"] == best.epoch)
    assert best.metrics[p.metric] == pytest.approx(reported, rel=1e-4)
    sys.path.insert(0, str(project))
    try:
        assert isinstance(load_model(out, trust_code=True).module, torch.nn.Module)
    finally:
        sys.path.remove(str(project))
    assert (run_dir / R.BEST_DIR / R.MODEL_FILE).is_file()


@pytest.mark.timeout(180)
def test_a_users_language_model_searched_beside_gru_on_charlm(project, ray_session, capsys):
    from orchestrator.running.best_model import export_best
    from orchestrator.running.prepare import experiment_from_run, prepare
    from trainables import load_model, sample_text

    families = {"causal": {"model": "my_models.py:CausalConv", "channels": {"grid": [16, 32]}}, "gru": {"hidden_size": 16}}
    path = experiment(project, families, task={"kind": "charlm", "max_chars": 20000, "seq_len": 32}, searcher="grid",
                      num_samples=1, max_concurrent=2, scheduler={"kind": "fifo", "max_epochs": 2})
    assert main(["run", str(path)]) == 0
    run_dir = project / "runs" / "own"
    trials = _conv_trials(run_dir, "causal")
    assert trials and all(t.epochs == 2 and not t.error for t in trials)
    p = prepare(experiment_from_run(run_dir))
    best = export_best(run_dir, p.data, p.metric, p.mode, out_path=project / "lm.pt", trials=trials)
    model = load_model(best.path, model_class=user_module(project / "my_models.py", "my_models").CausalConv)
    reported = next(r["val_bpc"] for r in best.trial.rows if r["training_iteration"] == best.epoch)
    assert model.metrics["val_bpc"] == pytest.approx(reported, rel=1e-4)
    text = sample_text(model, "The ", 40, seed=1)
    assert text.startswith("The ") and len(text) == 44
    # From the command line, a model of the user's own class is not imported unless trusted; the message says how.
    capsys.readouterr()
    assert main(["sample", str(best.path)]) == 2
    assert "--trust-code" in capsys.readouterr().err


def crafted(path: Path, model_class: str, config: dict | None = None) -> Path:
    """A model file as someone else could write it: plain values only, naming any class they like."""
    from dataclasses import asdict

    from trainables.export import FORMAT
    from trainables.tasks.base import ModelSpec

    torch.save({"format": FORMAT, "family": "conv", "model_config": config or {}, "model_class": model_class,
                "model_file": None, "train_config": {}, "spec": asdict(ModelSpec("sequence", 1, 1, seq_len=4)),
                "task": "forecast", "objective": {"name": "rmse"}, "metric": "val_rmse", "preprocessing": {},
                "metrics": {}, "state_dict": {}}, path)
    return path


def test_a_crafted_model_file_cannot_run_code(tmp_path, monkeypatch):
    from trainables import load_model

    marker = tmp_path / "ran"
    # Popen(spec, shell=True, ...) would run a shell: it is named, but never imported or called.
    popen = crafted(tmp_path / "popen.pt", "subprocess:Popen", {"args": f"touch {marker}", "shell": True})
    with pytest.raises(ValueError, match="subprocess:Popen, code from outside this package.*trust_code=True"):
        load_model(popen)
    with pytest.raises(ValueError, match="Popen is not a torch.nn.Module subclass"):
        load_model(popen, trust_code=True)  # imported, then refused before anything is called

    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\nfrom torch import nn\nclass Evil(nn.Module):\n    pass\n")
    for ref in (f"{evil}:Evil", "evil.py:Evil", "../evil.py:Evil"):
        with pytest.raises(ValueError, match="not a module:Class reference; a path in a model file is never executed"):
            load_model(crafted(tmp_path / "path.pt", ref), trust_code=True)
    monkeypatch.syspath_prepend(str(tmp_path))  # even when the module could be imported by name
    with pytest.raises(ValueError, match="evil:Evil, code from outside this package"):
        load_model(crafted(tmp_path / "name.pt", "evil:Evil"))
    assert not marker.exists(), "nothing named by a model file ran"


def test_a_model_class_passed_in_must_be_a_module(tmp_path):
    from trainables import load_model

    path = crafted(tmp_path / "m.pt", "my_models:Conv")
    with pytest.raises(ValueError, match="dict is not a torch.nn.Module subclass"):
        load_model(path, model_class=dict)
    with pytest.raises(ValueError, match="family 'conv' is not a built-in one"):
        load_model(crafted(tmp_path / "none.pt", None))
