"""No configuration trained twice: a finite space smaller than num_samples runs each configuration once, and a
searcher's repeated suggestion is answered with the earlier result instead of a second training."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.reading import results as R
from orchestrator.search.no_repeats import NoRepeats, config_key
from orchestrator.search.searchers import SEARCHERS
from search_spaces import parse_space

FOUR = {"families": {"mlp": {"hidden_size": {"choice": [16, 32]}, "num_layers": {"choice": [1, 2]}}}, "train": {"lr": 0.01}}


def test_a_space_counts_its_distinct_configurations():
    space = parse_space(FOUR, "four")
    assert space.distinct_count() == 4 and len({config_key(c) for c in space.configurations()}) == 4
    assert SEARCHERS["hyperopt"].planned(space, 6, 0) == 4 and SEARCHERS["hyperopt"].planned(space, 3, 0) == 3
    wide = parse_space({"families": {"mlp": {"hidden_size": {"quniform": [16, 64, 16]}, "dropout": {"choice": [0.0, 0.1]}},
                                     "gru": {"hidden_size": {"randint": [8, 11]}}}, "train": {"batch_size": {"choice": [32, 64]}}}, "w")
    assert wide.distinct_count() == 4 * 2 * 2 + 3 * 2  # quniform 16, 32, 48, 64
    assert parse_space({"families": {"mlp": {}}, "train": {"lr": {"loguniform": [1e-3, 1e-2]}}}, "c").distinct_count() is None


@pytest.mark.parametrize("searcher", ["random", "hyperopt", "optuna"])
def test_repeats_are_taught_and_asked_again_until_the_space_is_exhausted(searcher):
    """Each library's own searcher on a 4-configuration space: the wrapper starts 4 distinct configurations, then
    ends the search; the wrapped searcher is taught each repeat it proposed with the earlier trial's result."""
    space = parse_space(FOUR, "four")
    inner = SEARCHERS[searcher].build(space, "val_rmse", "min", 0, 8)
    search = NoRepeats(inner, space, 0, "val_rmse", "min")
    search.set_search_properties("val_rmse", "min", {})
    started = []
    for i in range(8):
        config = search.suggest(f"t{i}")
        if config == search.FINISHED:
            break
        started.append(config_key(config))
        search.on_trial_complete(f"t{i}", {"val_rmse": float(i), "training_iteration": 1})
    assert len(started) == 4 and len(set(started)) == 4, started
    assert search.suggest("t9") == search.FINISHED


@pytest.mark.timeout(180)
def test_a_search_of_a_small_space_trains_each_configuration_once(tmp_path, ray_session, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "four", "task": {"kind": "forecast", "window": 8}, "search_space": FOUR,
                                    "num_samples": 6, "max_concurrent": 1, "scheduler": {"kind": "fifo", "max_epochs": 1},
                                    "warm_start": "none", "storage": str(tmp_path / "runs")}))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: the space has 4 distinct configurations, so each runs once (4 trials, not num_samples 6)" in out
    trials = R.load_trials(tmp_path / "runs" / "four")
    assert len(trials) == 4 and len({config_key(t.config) for t in trials}) == 4
    assert R.read_run(tmp_path / "runs" / "four").planned_trials() == 4
