"""Every bundled search space parses, and every sampler of it (random, HyperOpt, Optuna) draws configs that
stay inside the space's domains, reach every family and build real models; the grid searcher's view of a
space, readers' torch-free parsing, and the refusal of bad spaces (with the key and the rule) are checked too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from search_spaces import (
    BUNDLED,
    Choice,
    Domain,
    Grid,
    LogUniform,
    QLogUniform,
    QUniform,
    RandInt,
    SearchSpace,
    SpaceError,
    Uniform,
    load_space,
    parse_space,
)
from trainables.models import build_model
from trainables.tasks import TASKS
from trainables.tasks.base import ModelSpec
from trainables.trial import TrainConfig, TrialConfig

REPO = Path(__file__).resolve().parent.parent
DRAWS = 40

SPEC_FOR_INPUT = {
    "tokens": ModelSpec("tokens", 30, 30, seq_len=8, per_step=True),
    "sequence": ModelSpec("sequence", 2, 1, seq_len=8),
    "vector": ModelSpec("vector", 5, 3),
}


def spec_for(name: str) -> ModelSpec:
    """The input of the task a bundled space is named after (other spaces, and `custom` whose loader's arrays
    decide, are checked on sequences)."""
    return SPEC_FOR_INPUT[(TASKS[name].input_kind if name in TASKS else None) or "sequence"]


def within(domain, value) -> bool:
    """Whether `value` is one that `domain` may give (a constant must come out unchanged)."""
    if isinstance(domain, Choice):
        return value in domain.options
    if isinstance(domain, RandInt):
        return type(value) is int and domain.low <= value < domain.high
    if isinstance(domain, QUniform):
        on_step = np.isclose(value / domain.q, round(value / domain.q)) or value in (domain.low, domain.high)
        return on_step and domain.low <= value <= domain.high and (type(value) is int) == domain.integer
    if isinstance(domain, Uniform):
        return type(value) is float and domain.low <= value <= domain.high
    return value == domain


def check_config(config: dict, space: SearchSpace, spec: ModelSpec) -> TrialConfig:
    """A sampler's config: the orchestrator's parser takes it, every value is in its domain, the model builds."""
    trial = TrialConfig.from_tune(config)
    assert isinstance(trial.train, TrainConfig)
    for values, domains in ((trial.model, space.families[trial.family]), ({k: config[k] for k in space.train}, space.train)):
        assert set(values) == set(domains)
        for key, value in values.items():
            assert not isinstance(value, np.generic), f"{key} is a numpy scalar, not a plain value"
            assert within(domains[key], value), f"{key}={value!r} is outside {domains[key]}"
    build_model(trial.family, trial.model, spec)
    return trial


def draw_random(space: SearchSpace, n: int) -> list[dict]:
    rng = np.random.default_rng(1)
    return [space.sample(rng) for _ in range(n)]


def draw_hyperopt(space: SearchSpace, n: int) -> list[dict]:
    from hyperopt.pyll import stochastic

    from search_spaces.hyperopt_space import to_hyperopt

    expr, rng = to_hyperopt(space), np.random.default_rng(0)
    return [stochastic.sample(expr, rng) for _ in range(n)]


def draw_optuna(space: SearchSpace, n: int) -> list[dict]:
    """A short TPE study (random start, then modelled draws) through the define-by-run translation."""
    import optuna

    from search_spaces.optuna_space import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=n // 2))
    configs: list[dict] = []

    def objective(trial) -> float:
        configs.append(suggest(trial, space))
        return float(len(configs) % 7)  # any value: TPE only needs a ranking to model

    study.optimize(objective, n_trials=n)
    return configs


# Every way a space is sampled outside the grid searcher: each must honour the same domains.
SAMPLERS = {"random": draw_random, "hyperopt": draw_hyperopt, "optuna": draw_optuna}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("name", sorted(BUNDLED))
@pytest.mark.timeout(90)
def test_bundled_space_samples_valid_configs(name, sampler):
    space = load_space(name)
    configs = SAMPLERS[sampler](space, DRAWS)
    assert len(configs) == DRAWS
    families = {check_config(config, space, spec_for(name)).family for config in configs}
    assert families == set(space.families), "the conditional choice must reach every family"


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_space_grid(name):
    space = load_space(name)
    grid = space.grid(np.random.default_rng(1))
    assert len(grid) == space.grid_size(seed=1) >= len(space.families)
    for config in grid:
        check_config(config, space, spec_for(name))
    # The grid searcher's rule: a space with one family and no grid domain has nothing to enumerate.
    grid_domains = [v for sub in [*space.families.values(), space.train] for v in sub.values() if isinstance(v, Grid)]
    assert space.has_grid() == (bool(grid_domains) or len(space.families) > 1)


def test_grid_expands_product():
    space = load_space("lstm_grid")
    grid = space.grid(np.random.default_rng(0))
    combos = {(c["arch"]["model"]["hidden_size"], c["lr"]) for c in grid}
    assert combos == {(32, 1e-3), (32, 3e-3), (64, 1e-3), (64, 3e-3)}
    assert space.grid_size() == 4 and space.has_grid()
    assert not parse_space({"families": {"lstm": {"hidden_size": {"choice": [8, 16]}}}}, "s").has_grid()


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_probes_use_every_option(name):
    space = load_space(name)
    probes = space.probes(np.random.default_rng(0))
    for config in probes:
        check_config(config, space, spec_for(name))
    for family, sub in space.families.items():
        for key, domain in sub.items():
            seen = {c["arch"]["model"][key] for c in probes if c["arch"]["family"] == family}
            assert set(getattr(domain, "options", ())) <= seen, (family, key)


def test_hyperopt_labels_carry_the_family():
    """Labels are what HyperOpt's saved trials are keyed by: a change would orphan resumed searches."""
    from hyperopt import Domain as HyperOptDomain

    from search_spaces.hyperopt_space import to_hyperopt

    space = load_space("forecast")
    labels = set(HyperOptDomain(lambda config: 0.0, to_hyperopt(space)).params)
    expected = {"arch"} | {f"arch/{f}/{k}" for f, sub in space.families.items() for k in sub} | set(space.train)
    assert labels == expected


@pytest.mark.timeout(60)
def test_hyperopt_searcher_suggests_through_ray():
    """Ray's HyperOptSearch with our native space: no DuplicateLabel, no hang, TPE after the startup trials."""
    from ray.tune.search.hyperopt import HyperOptSearch

    from search_spaces.hyperopt_space import to_hyperopt

    space = load_space("charlm")
    searcher = HyperOptSearch(space=to_hyperopt(space), metric="val_bpc", mode="min", n_initial_points=3, random_state_seed=0)
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        check_config(config, space, SPEC_FOR_INPUT["tokens"])
        searcher.on_trial_complete(f"t{i}", {"val_bpc": 3.0 - 0.1 * i})


@pytest.mark.timeout(60)
def test_optuna_translation_covers_every_domain():
    optuna = pytest.importorskip("optuna")
    from search_spaces.optuna_space import suggest

    space = parse_space(
        {
            "families": {
                "lstm": {"hidden_size": {"qloguniform": [16, 128, 8]}, "num_layers": {"randint": [1, 3]}, "dropout": {"uniform": [0.0, 0.3]}},
                "mlp": {"hidden_size": {"quniform": [32, 256, 32]}, "activation": {"choice": ["relu", "gelu"]}},
            },
            "train": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}, "weight_decay": {"quniform": [0.0, 0.01, 0.001]}, "batch_size": 32},
        },
        "test space",
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    families = set()
    for _ in range(40):
        trial = study.ask()
        config = suggest(trial, space)
        families.add(check_config(config, space, SPEC_FOR_INPUT["sequence"]).family)
        assert config["arch"]["model"].get("num_layers", 1) in (1, 2)  # randint's high is excluded
        # Each family's hyperparameters are their own Optuna parameters, as HyperOpt's labels keep them apart.
        assert {k.split("/")[0] for k in trial.params if "/" in k} == {config["arch"]["family"]}
    assert families == {"lstm", "mlp"}


def test_every_task_has_a_bundled_space():
    for task in TASKS:
        assert task in BUNDLED


def test_hparam_names_are_the_union_over_families():
    names = load_space("charlm").hparam_names()
    assert {"family", "model/context", "model/nonlinearity", "model/dropout", "lr"} <= set(names)


def test_log_scaled_names_the_log_domains():
    space = load_space("charlm")
    assert space.log_scaled() == {"model/hidden_size", "lr", "weight_decay"}  # qloguniform and loguniform
    assert all(isinstance(d, (LogUniform, QLogUniform)) for d in (space.families["lstm"]["hidden_size"], space.train["lr"]))
    assert load_space("lstm_grid").log_scaled() == set()


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_from_run_parses_what_load_space_does(name):
    space = load_space(name)
    again = SearchSpace.from_run(space.raw)
    assert (again.families, again.train) == (space.families, space.train)


def test_from_run_does_not_consult_the_family_registry():
    """A finished run stays readable after a family (or its hyperparameters) leaves the registry."""
    space = SearchSpace.from_run({"families": {"transformer": {"heads": {"choice": [2, 4]}}}, "train": {"lr": 0.01}})
    assert {"family", "model/heads", "lr"} <= set(space.hparam_names())
    with pytest.raises(SpaceError, match="randint takes 2 values"):
        SearchSpace.from_run({"families": {"lstm": {"hidden_size": {"randint": [4]}}}})


def test_search_spaces_and_from_run_import_no_torch():
    """Readers of finished runs parse the run's space without paying for torch (or a search library)."""
    code = (
        "import sys, yaml\n"
        "from search_spaces import BUNDLED, SearchSpace\n"
        "for path in BUNDLED.values():\n"
        "    space = SearchSpace.from_run(yaml.safe_load(path.read_text()))\n"
        "    space.sample(__import__('numpy').random.default_rng(0)); space.hparam_names(); space.log_scaled()\n"
        "print(sorted(m for m in ('torch', 'hyperopt', 'optuna', 'ray') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


class _Record:
    """A family record of another registry: only what parse_space asks of one."""

    def hyperparameters(self) -> list[str]:
        return ["width"]

    def make_config(self, values: dict) -> dict:
        if values.get("width", 1) < 1:
            raise ValueError(f"`width >= 1` must hold, but got width={values['width']}")
        return values


def test_parse_space_checks_against_a_given_registry():
    registry = {"toy": _Record()}
    space = parse_space({"families": {"toy": {"width": {"randint": [1, 4]}}}}, "toy.yaml", families=registry)
    assert space.sample(np.random.default_rng(0))["arch"]["family"] == "toy"
    with pytest.raises(SpaceError, match="unknown model family 'lstm'; known: toy"):
        parse_space({"families": {"lstm": {}}}, "toy.yaml", families=registry)
    with pytest.raises(SpaceError, match="families.toy: `width >= 1` must hold"):
        parse_space({"families": {"toy": {"width": {"choice": [0]}}}}, "toy.yaml", families=registry)


def test_domains_know_no_search_library():
    """A domain validates and samples; the translations live in their own modules."""
    for cls in (Uniform, LogUniform, QUniform, QLogUniform, RandInt, Choice, Grid):
        assert issubclass(cls, Domain)
        assert not any("hyperopt" in a or "optuna" in a for a in dir(cls)), cls


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
        ({"families": {"lstm": {}}, "train": {"lr": {"quniform": [0.1, 0.2, 0]}}}, "`q > 0` must hold"),
        ({"families": {"lstm": {}}, "train": {"momentum": 0.9, "nesterov": True}}, "train.nesterov: unknown training hyperparameter"),
    ],
)
def test_bad_spaces_are_refused_with_the_key_and_rule(mapping, message):
    with pytest.raises(SpaceError) as info:
        parse_space(mapping, "space.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("space.yaml:")


def test_load_space_refuses_a_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpaceError, match="is neither a bundled space"):
        load_space("nope.yaml", base=tmp_path)
    (tmp_path / "bad.yaml").write_text("families: [unclosed\n")
    with pytest.raises(SpaceError, match="cannot read as YAML"):
        load_space("bad.yaml", base=tmp_path)
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump({"families": {"mlp": {}}}))
    assert list(load_space("ok.yaml", base=tmp_path).families) == ["mlp"]
