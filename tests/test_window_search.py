"""Searching a forecast's window: the space's `task:` section, each window's data prepared once and shared, every
trial trained, exported and ensembled on the samples of the window it drew."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from orchestrator.cli import main
from orchestrator.experiment.load import load_experiment
from orchestrator.reading import results as R
from orchestrator.running.prepare import prepare
from search_spaces import SpaceError, parse_space
from search_spaces.hyperopt_space import to_hyperopt
from trainables import load_model
from trainables.trial import TrialConfig

WINDOWS = [8, 16, 24]
SPACE = {"families": {"mlp": {"hidden_size": {"choice": [32, 64]}}, "gru": {"hidden_size": 16}},
         "train": {"lr": {"loguniform": [0.001, 0.02]}, "batch_size": 32}, "task": {"window": {"choice": WINDOWS}}}


def experiment(tmp_path, **extra) -> str:
    config = {"name": "win", "task": {"kind": "forecast", "window": 24}, "search_space": SPACE, "num_samples": 10,
              "scheduler": {"kind": "fifo", "max_epochs": 3}, "warm_start": "none", "storage": str(tmp_path / "runs"),
              "points_to_evaluate": [{"family": "mlp", "hidden_size": 64, "lr": 0.005, "window": 8}], **extra}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def test_the_window_is_a_hyperparameter_every_searcher_samples():
    space = parse_space(SPACE, "space")
    assert space.task_options() == {"window": WINDOWS} and "window" in space.hparam_names()
    from hyperopt.pyll import stochastic

    drawn = {stochastic.sample(to_hyperopt(space), rng=np.random.default_rng(i))["window"] for i in range(40)}
    assert drawn == set(WINDOWS)
    config = space.sample(np.random.default_rng(0))
    assert TrialConfig.from_tune(config).task == {"window": config["window"]} and "window" in TrialConfig.from_tune(config).flat()
    assert space.distinct_count() == (2 + 1) * 3 or space.distinct_count() is None
    for bad, rule in (({"window": {"uniform": [4, 9]}}, "must be a positive integer or a choice of them"),
                      ({"horizon": 3}, "not a task option a space can search; searchable: window")):
        with pytest.raises(SpaceError, match=rule):
            parse_space({**SPACE, "task": bad}, "space")


def test_each_window_is_prepared_once_and_a_task_without_one_is_refused(tmp_path, capsys):
    p = prepare(load_experiment(experiment(tmp_path)))
    variants = p.data.variants["window"]
    assert sorted(variants) == [8, 16] and p.data.spec.seq_len == 24, "the experiment's window is the data itself"
    assert all(v.spec.seq_len == w and v.splits["train"].x.shape[1] == w for w, v in variants.items())
    assert p.data.variant({"window": 8}) is variants[8] and p.data.variant({"window": 24}) is p.data
    charlm = tmp_path / "charlm.yaml"
    charlm.write_text(yaml.safe_dump({"task": {"kind": "charlm"}, "search_space": {**SPACE, "families": {"mlp": {}}},
                                      "storage": str(tmp_path / "runs")}))
    assert main(["validate", str(charlm)]) == 2
    assert "task.window: task 'charlm' has no option 'window' to search" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(240)
def test_trials_train_and_export_on_their_own_window(tmp_path, ray_session, capsys):
    assert main(["run", experiment(tmp_path, ensemble=3)]) == 0
    run_dir = tmp_path / "runs" / "win"
    trials = R.load_trials(run_dir)
    windows = {t.trial_id: t.hparams()["window"] for t in trials}
    assert set(windows.values()) > {8}, windows  # the given point, and the searcher's own draws
    # A model's size follows its window (an MLP reads window x features inputs).
    mlp64 = {windows[t.trial_id]: t.num_params for t in trials if t.hparams().get("model/hidden_size") == 64}
    assert len(set(mlp64.values())) == len(mlp64), mlp64
    eight = next(t for t in trials if windows[t.trial_id] == 8)
    out = tmp_path / "eight.pt"
    assert main(["export", str(run_dir), "--trial", eight.trial_id, "--out", str(out)]) == 0
    model = load_model(out)
    assert model.preprocessing["window"] == 8 and model.spec.seq_len == 8
    assert abs(model.metrics["val_rmse"] - eight.best("val_rmse", "min")) < 1e-6
    assert model.predict(np.random.default_rng(0).uniform(0, 100, (4, 8, 1))).shape == (4, 1)
    ensemble = R.read_run(run_dir).ensemble()
    best_window = windows[R.leaderboard(trials, "val_rmse", "min")[0].trial_id]
    assert {windows[m["trial_id"]] for m in ensemble["members"]} == {best_window}
    capsys.readouterr()
    assert main(["best", str(run_dir), "--json"]) == 0
    assert '"window"' in capsys.readouterr().out
