"""Every bundled search space parses, converts to HyperOpt (conditional family choice included) and
samples configs that build real models; the random and grid samplers do too; bad spaces are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hyperopt.pyll import stochastic

from search_spaces import BUNDLED, SpaceError, load_space, parse_space
from trainables.models import build_model
from trainables.tasks import TASKS
from trainables.tasks.base import ModelSpec
from trainables.training import TrainConfig, TrialConfig

SPEC_FOR_INPUT = {
    "tokens": ModelSpec("tokens", 30, 30, seq_len=8, per_step=True),
    "sequence": ModelSpec("sequence", 2, 1, seq_len=8),
    "vector": ModelSpec("vector", 5, 3),
}


def spec_for(name: str) -> ModelSpec:
    """The input of the task a bundled space is named after (other spaces are for sequences)."""
    return SPEC_FOR_INPUT[TASKS[name].input_kind if name in TASKS else "sequence"]


def check_config(config: dict, spec: ModelSpec) -> TrialConfig:
    trial = TrialConfig.from_tune(config)
    assert isinstance(trial.train, TrainConfig)
    for key, value in trial.model.items():
        assert not isinstance(value, (np.generic,)), f"{key} is a numpy scalar, not a plain value"
    build_model(trial.family, trial.model, spec)
    return trial


@pytest.mark.parametrize("name", sorted(BUNDLED))
@pytest.mark.timeout(60)
def test_bundled_space_samples_with_hyperopt(name):
    space = load_space(name)
    spec = spec_for(name)
    expr = space.hyperopt()
    rng = np.random.default_rng(0)
    families = set()
    for _ in range(60):
        trial = check_config(stochastic.sample(expr, rng), spec)
        families.add(trial.family)
        if isinstance(trial.model.get("hidden_size"), float):
            pytest.fail("integer hyperparameters must come out as int")
    assert families == set(space.families), "the conditional choice must reach every family"


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_space_random_and_grid(name):
    space = load_space(name)
    spec = spec_for(name)
    rng = np.random.default_rng(1)
    for _ in range(20):
        check_config(space.sample(rng), spec)
    grid = space.grid(rng)
    assert len(grid) >= len(space.families)
    for config in grid:
        check_config(config, spec)


@pytest.mark.timeout(60)
def test_hyperopt_searcher_suggests_through_ray():
    """Ray's HyperOptSearch with our native space: no DuplicateLabel, no hang, TPE after the startup trials."""
    from orchestrator.strategies import SEARCHERS

    space = load_space("charlm")
    searcher = SEARCHERS["hyperopt"](space, "val_bpc", "min", 0, 9)
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        check_config(config, SPEC_FOR_INPUT["tokens"])
        searcher.on_trial_complete(f"t{i}", {"val_bpc": 3.0 - 0.1 * i})


def test_grid_expands_product():
    space = load_space("lstm_grid")
    grid = space.grid(np.random.default_rng(0))
    combos = {(c["arch"]["model"]["hidden_size"], c["lr"]) for c in grid}
    assert combos == {(32, 1e-3), (32, 3e-3), (64, 1e-3), (64, 3e-3)}


def test_every_task_has_a_bundled_space():
    for task in TASKS:
        assert task in BUNDLED


def test_hparam_names_are_the_union_over_families():
    names = load_space("charlm").hparam_names()
    assert {"family", "model/context", "model/nonlinearity", "model/dropout", "lr"} <= set(names)


@pytest.mark.parametrize(
    "mapping,message",
    [
        ({"families": {"lstn": {}}}, "unknown model family 'lstn'; known: gru, lstm, mlp, rnn"),
        ({"families": {}}, "families: must map at least one model family"),
        ({"families": {"lstm": {"hiden_size": 3}}}, "families.lstm.hiden_size: unknown hyperparameter"),
        ({"families": {"lstm": {"hidden_size": {"loguniform": [0, 10]}}}}, "`low > 0` must hold"),
        ({"families": {"lstm": {"dropout": {"uniform": [0.5, 0.1]}}}}, "`low < high` must hold"),
        ({"families": {"lstm": {"hidden_size": {"randint": [4]}}}}, "randint takes 2 values"),
        ({"families": {"lstm": {"hidden_size": {"normal": [1, 2]}}}}, "is not a domain"),
        ({"families": {"lstm": {"hidden_size": [32, 64]}}}, "is ambiguous"),
        ({"families": {"lstm": {}}, "train": {"optimizer": {"choice": ["adam", "lion"]}}}, "optimizer must be one of"),
        ({"families": {"lstm": {}}, "train": {"lr": {"choice": []}}}, "needs at least one option"),
        ({"families": {"lstm": {}}, "trian": {}}, "unknown key 'trian'"),
    ],
)
def test_bad_spaces_are_refused_with_the_key_and_rule(mapping, message):
    with pytest.raises(SpaceError) as info:
        parse_space(mapping, "space.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("space.yaml:")
