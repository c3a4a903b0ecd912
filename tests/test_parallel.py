"""Data-parallel trials (`resources.workers`) on CPUs with gloo: gradients averaged across workers, a search
through the CLI with ASHA, a killed worker's trial resumed from its checkpoint, the export loaded back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from conftest import kill_mid_trial

from orchestrator.experiment.config import TASK_OPTIONS
from trainables import constants as C
from trainables.tasks import TASKS

# Plain SGD without momentum or dropout: one step's weights are then a function of the gradient alone.
SGD = {"arch": {"family": "mlp", "model": {"hidden_size": 32}}, "lr": 0.05, "batch_size": 16, "optimizer": "sgd", "momentum": 0.0}


@pytest.fixture(scope="module")
def forecast():
    return TASKS["forecast"].load(TASK_OPTIONS["forecast"](kind="forecast"))


def test_one_step_averages_gradients_like_one_process_on_the_combined_batch(ray_session, forecast):
    from trainables.host import TrialHost, TrialSettings
    from trainables.parallel import WorkerGroup, gather

    settings = TrialSettings(metric=C.RMSE, mode="min", max_epochs=3, seed=5, steps_per_epoch=1, workers=2)
    group = WorkerGroup(forecast, settings)
    try:
        group.start(SGD)
        before = gather([w.weights.remote() for w in group.workers])
        result = group.epoch()
        after = gather([w.weights.remote() for w in group.workers])
    finally:
        group.shutdown()
    assert result[C.WORLD_SIZE] == 2 and result[C.EPOCH] == 1
    # Both workers start from the same weights and end the step with the same weights...
    for name in before[0]:
        assert torch.equal(before[0][name], before[1][name]), name
        assert torch.allclose(after[0][name], after[1][name], atol=1e-7), name
    # ...which are those of one process taking one step on the combined batch (2 x 16 samples, the same shuffle).
    alone = TrialHost(forecast, TrialSettings(metric=C.RMSE, mode="min", max_epochs=3, seed=5, steps_per_epoch=1))
    alone.start(SGD)  # the same seed (a trial's seed derives from its config), then a batch of both shards
    alone.trial.config = replace(alone.trial.config, train=replace(alone.trial.config.train, batch_size=32))
    assert all(torch.equal(before[0][k], v) for k, v in alone.trial.model.state_dict().items())
    single = alone.epoch()
    moved = 0.0
    for name, weight in alone.trial.model.state_dict().items():
        assert torch.allclose(after[0][name], weight, atol=1e-6, rtol=1e-5), name
        moved = max(moved, float((weight - before[0][name]).abs().max()))
    assert moved > 1e-4, "the step must change the weights, or the comparison proves nothing"
    # The group's train loss is over both shards: the single process's loss on the same 32 samples.
    assert result[C.TRAIN_LOSS] == pytest.approx(single[C.TRAIN_LOSS], rel=1e-5)


def test_a_worker_group_checkpoint_restores_on_every_worker(ray_session, forecast, tmp_path):
    from ray import tune

    from trainables.host import TrialSettings
    from trainables.parallel import gather
    from trainables.trainable import TorchTrainable

    settings = TrialSettings(metric=C.RMSE, mode="min", max_epochs=4, seed=1, workers=2)
    cls = tune.with_parameters(TorchTrainable, data=forecast, settings=settings)
    a = cls(config=SGD)
    a.train()
    saved = a.save(str(tmp_path / "ckpt"))
    expected = a.train()
    a.stop()
    b = cls(config=SGD)
    b.restore(saved)
    again = b.train()
    weights = gather([w.weights.remote() for w in b.host.workers])
    b.stop()
    assert again[C.EPOCH] == expected[C.EPOCH] == 2
    assert again[C.RMSE] == pytest.approx(expected[C.RMSE], rel=1e-6)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def two_worker_experiment(tmp: Path, **changes) -> Path:
    """A small charlm search whose every trial trains on 2 gloo workers of 1 CPU each (the test Ray's 2 CPUs)."""
    config = {
        "name": "ddp",
        "task": {"kind": "charlm", "max_chars": 20000, "seq_len": 32},
        "search_space": {
            "families": {"gru": {"hidden_size": {"choice": [16, 32]}}, "mlp": {"hidden_size": {"choice": [32, 64]}}},
            "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}, "batch_size": 32},
        },
        "searcher": "hyperopt",
        "scheduler": {"kind": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2},
        "num_samples": 5,
        "resources": {"cpu": 1, "workers": 2},
        "storage": str(tmp / "runs"),
        **changes,
    }
    path = tmp / "ddp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def result_rows(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.timeout(400)
def test_two_worker_search_through_the_cli_with_asha_and_export(tmp_path, ray_session, capsys):
    from orchestrator.cli import main
    from trainables import load_model

    path = two_worker_experiment(tmp_path)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 workers per trial" in out and "batch_size x 2" in out, out
    run_dir = tmp_path / "runs" / "ddp"
    trials = [d for d in run_dir.iterdir() if (d / "result.json").is_file()]
    assert len(trials) == 5
    epochs = [len(result_rows(d)) for d in trials]
    assert min(epochs) < 4 and max(epochs) == 4, f"ASHA must stop some trials early and let one finish: {epochs}"
    rows = [r for d in trials for r in result_rows(d)]
    assert {r[C.WORLD_SIZE] for r in rows} == {2}
    model = load_model(run_dir / "best" / "model.pt")
    metrics = json.loads((run_dir / "best" / "metrics.json").read_text())
    assert model.metrics["test_bpc"] == pytest.approx(metrics["metrics"]["test_bpc"])
    x = torch.zeros(1, 32, dtype=torch.long)
    assert model.module(x).shape[-1] == len(model.preprocessing["vocab"])


def worker_pids() -> list[int]:
    """Processes of data-parallel workers (Ray titles an actor's process `ray::ClassName...`)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "cmdline").read_bytes().startswith(b"ray::DataParallelWorker"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


@pytest.mark.timeout(400)
def test_a_killed_worker_resumes_its_trial_from_the_checkpoint(tmp_path, ray_session, capsys):
    from orchestrator.cli import main

    path = two_worker_experiment(tmp_path, searcher="random", num_samples=2, max_failures=2,
                                 scheduler={"kind": "fifo", "max_epochs": 5})
    run_dir = tmp_path / "runs" / "ddp"
    killer, killed = kill_mid_trial(run_dir, lambda row: (worker_pids() or [None])[-1], 2, 4)  # one of its DDP workers
    assert main(["run", str(path)]) == 0
    killer.join()
    assert killed, "no trial was caught mid-run"
    iterations = [r["training_iteration"] for r in result_rows(run_dir / killed["trial"])]
    assert iterations.count(1) == 1, f"the trial restarted from scratch: {iterations}"
    assert max(iterations) == 5
    assert len({r["pid"] for r in result_rows(run_dir / killed["trial"])}) >= 2, "the trial must continue in a new actor"
