"""A real search, end to end through the CLI: Ray Tune with HyperOpt + ASHA on real data, then every
artefact read back the way a user would: the leaderboard, TensorBoard files (with TensorBoard's own
reader), the exported model (loaded without Ray and evaluated to the reported metric)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from orchestrator.cli import main
from trainables import constants as C
from trainables import load_model, sample_text


@pytest.mark.timeout(240)
def test_run_directory_is_complete(finished_run):
    assert (finished_run / "experiment.yaml").is_file()
    assert (finished_run / "best" / "model.pt").is_file()
    metrics = json.loads((finished_run / "best" / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"val_loss", "val_bpc", "val_perplexity", "test_loss", "test_bpc", "test_perplexity"}
    trial_dirs = [p for p in finished_run.iterdir() if (p / "params.json").is_file()]
    assert len(trial_dirs) == 8


def test_results_and_early_stopping(finished_run, capsys):
    capsys.readouterr()
    assert main(["best", str(finished_run), "--json", "--top", "100"]) == 0
    board = json.loads(capsys.readouterr().out)
    trials = board["trials"]
    assert len(trials) == 8
    assert [t["rank"] for t in trials] == list(range(1, 9))
    values = [t["val_bpc"] for t in trials]
    assert values == sorted(values), "the leaderboard is ranked by the metric"
    assert any(t["status"] == "stopped early" for t in trials), "ASHA stopped no trial"
    assert any(t["status"] == "finished" and t["epochs"] == 4 for t in trials)
    assert {t["family"] for t in trials} <= {"lstm", "gru", "mlp"}
    assert values[0] < values[-1], "the best trial must beat the worst"
    assert board["best"]["metrics"]["val_bpc"] == pytest.approx(values[0], rel=1e-5)


def test_tensorboard_files_have_curves_and_hparams(finished_run):
    for trial_dir in (p for p in finished_run.iterdir() if (p / "params.json").is_file()):
        acc = EventAccumulator(str(trial_dir))
        acc.Reload()
        tags = set(acc.Tags()["scalars"])
        assert {*C.CURVE_KEYS, C.BPC, C.PERPLEXITY, "best_val_bpc"} <= tags  # every metric of the task
        rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        bpc = [e.value for e in acc.Scalars(C.BPC)]
        assert bpc == pytest.approx([r[C.BPC] for r in rows], rel=1e-5)
        content = acc.PluginTagToContent("hparams")
        start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
        params = json.loads((trial_dir / "params.json").read_text())
        assert start.hparams["family"].string_value == params["arch"]["family"]
        assert start.hparams["lr"].number_value == pytest.approx(params["lr"])
        # Every trial declares the union of the space's hyperparameters, whatever its family.
        declared = {h.name for h in experiment.hparam_infos}
        assert {"family", "lr", "model/hidden_size", "model/context"} <= declared
        assert "_hparams_/session_end_info" in content


def test_exported_model_reproduces_reported_metric(finished_run):
    from orchestrator.experiment.config import TASK_OPTIONS
    from trainables.objectives import Objective
    from trainables.tasks import TASKS
    from trainables.training import DeviceData, evaluate

    model = load_model(finished_run / "best" / "model.pt")
    metrics = json.loads((finished_run / "best" / "metrics.json").read_text())
    assert model.metrics["test_bpc"] == pytest.approx(metrics["metrics"]["test_bpc"])
    # Re-load the data the way the run did and evaluate the exported weights independently.
    data = TASKS["charlm"].load(TASK_OPTIONS["charlm"](kind="charlm", max_chars=20000, seq_len=32))
    assert model.preprocessing["vocab"] == data.preprocessing["vocab"]
    staged = DeviceData.stage(data, torch.device("cpu"))
    _, val_bpc = evaluate(model.module, staged, "val", Objective(data.objective))
    assert val_bpc == pytest.approx(metrics["metrics"]["val_bpc"], rel=1e-4)
    # The best checkpoint's metric as reported by the trial during the search.
    trial_rows = [json.loads(l) for l in (Path(metrics["trial_dir"]) / "result.json").read_text().splitlines()]
    reported = next(r[C.BPC] for r in trial_rows if r["training_iteration"] == metrics["epoch"])
    assert val_bpc == pytest.approx(reported, rel=1e-4)
    text = sample_text(model, "The ", 50, seed=1)
    assert text.startswith("The ") and len(text) == 54


def test_export_and_sample_commands(finished_run, tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert main(["export", str(finished_run), "--out", str(out)]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["family"] in {"lstm", "gru", "mlp"} and "state_dict" in payload
    capsys.readouterr()
    assert main(["sample", str(out), "--prompt", "def ", "--length", "40"]) == 0
    assert capsys.readouterr().out.startswith("def ")


@pytest.mark.slow
def test_cli_entry_point_rejects_bad_config(tmp_path):
    """The installed console script: exit 2, one `error:` line, no traceback, nothing written."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"task: {{kind: charlm}}\nsearch_space: charlm\nnum_sample: 3\nstorage: {tmp_path / 'runs'}\n")
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "unknown key 'num_sample'; did you mean 'num_samples'?" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_validate_command(capsys):
    """With no file, validate checks the built-in quickstart (charlm on CPython's docs, the bundled charlm space,
    HyperOpt + ASHA) and says, in one line, what it would run: the data and its splits, the space's file, its
    families, the metric and its direction, the searcher and the scheduler."""
    import orchestrator.experiment
    import search_spaces

    assert main(["validate"]) == 0
    out = capsys.readouterr().out.strip()
    quickstart = Path(orchestrator.experiment.__file__).resolve().parent / "quickstart.yaml"
    space = Path(search_spaces.__file__).resolve().parent / "charlm.yaml"
    line = re.fullmatch(
        re.escape(f"{quickstart}: valid. charlm on pydoc_data.topics (CPython documentation) (")
        + r"train (\d+), val (\d+), test (\d+) samples"
        + re.escape(f"); search space {space}: 5 families (lstm, gru, rnn, transformer, mlp); optimizing val_bpc (min) with hyperopt + asha"),
        out,
    )
    assert line, out
    train, val, test = map(int, line.groups())
    assert val == test == round((train + val + test) * 0.1) > 0  # the default 10 % validation and 10 % test windows


# The driver as `orchestrator run` has it just before Ray starts: the CLI, the config and the runner imported.
_DRIVER_BEFORE_RAY = """
import importlib, json, sys
import orchestrator.cli, orchestrator.experiment.config, orchestrator.running.runner, orchestrator.reading.storage
from orchestrator.running import cluster
from orchestrator.search.searchers import SEARCHERS
import ray
for module in cluster.IMPORTED_BY_RAY_INIT:
    importlib.import_module(module)
before = set(sys.modules)
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_imports_ahead_share_no_module_with_ray_start():
    """The modules the driver imports in a thread while Ray starts are never ones ray.init imports itself."""
    by_init = _new_modules(
        'ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, '
        "_system_config=cluster.LOCAL_RAY_SYSTEM_CONFIG); ray.shutdown()"
    )
    ahead = _new_modules(
        "for m in (*SEARCHERS['hyperopt'].imports, *cluster.AHEAD_OF_TUNING): importlib.import_module(m)"
    )
    assert "ray.tune" in ahead and any(m.startswith("hyperopt") for m in ahead)
    assert len(by_init) > 50, "ray.init imports its node-starting modules lazily"
    assert not by_init & ahead, f"add these to cluster.IMPORTED_BY_RAY_INIT: {sorted(by_init & ahead)}"


def _new_modules(code: str) -> set[str]:
    """The modules a fresh driver imports when it runs `code` after the `_DRIVER_BEFORE_RAY` imports."""
    script = _DRIVER_BEFORE_RAY + code + "\nprint(json.dumps(sorted(set(sys.modules) - before)))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))
