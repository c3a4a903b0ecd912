"""Declarative search spaces: YAML in, HyperOpt / random / grid samplers out.

A space file has two sections::

    families:            # the conditional model-family choice; each family has its own sub-space
      lstm: {hidden_size: {qloguniform: [32, 256, 16]}, num_layers: {randint: [1, 3]}}
      mlp:  {hidden_size: {choice: [64, 128, 256]}}
    train:               # hyperparameters every family shares
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      optimizer: {choice: [adam, adamw]}

A value is either a constant or a one-key mapping naming a domain: uniform [low, high], loguniform
[low, high], quniform [low, high, q], qloguniform [low, high, q], randint [low, high) (high excluded),
choice [options...], grid [values...]. A trial's config is {"arch": {"family": f, "model": {...}}, <train>}.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainables.models import MODELS
from trainables.training import TRAIN_KEYS, TrainConfig

SPACES_DIR = Path(__file__).resolve().parent
BUNDLED = {p.stem: p for p in sorted(SPACES_DIR.glob("*.yaml"))}


class SpaceError(ValueError):
    """A search space that cannot be used; the message names the file, the key, the value and the rule."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Domain:
    """A range or set of values for one hyperparameter."""

    grid = False

    def sample(self, rng: np.random.Generator):
        raise NotImplementedError

    def to_hyperopt(self, label: str):
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Domain):
    low: float
    high: float

    def __post_init__(self):
        if not (_number(self.low) and _number(self.high)):
            raise ValueError(f"bounds must be numbers, but got low={self.low!r}, high={self.high!r}")
        if not self.low < self.high:
            raise ValueError(f"`low < high` must hold, but got (low={self.low}, high={self.high})")

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def to_hyperopt(self, label):
        from hyperopt import hp

        return hp.uniform(label, self.low, self.high)


@dataclass(frozen=True)
class LogUniform(Uniform):
    def __post_init__(self):
        super().__post_init__()
        if not self.low > 0:
            raise ValueError(f"`low > 0` must hold for a log scale, but got (low={self.low}, high={self.high})")

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def to_hyperopt(self, label):
        from hyperopt import hp

        return hp.loguniform(label, math.log(self.low), math.log(self.high))


@dataclass(frozen=True)
class QUniform(Domain):
    low: float
    high: float
    q: float
    log = False

    def __post_init__(self):
        (LogUniform if self.log else Uniform)(self.low, self.high)
        if not (_number(self.q) and self.q > 0):
            raise ValueError(f"`q > 0` must hold, but got q={self.q!r}")

    @property
    def integer(self) -> bool:
        return _is_int(self.low) and _is_int(self.high) and _is_int(self.q)

    def _cast(self, v):
        return int(round(v)) if self.integer else float(v)

    def sample(self, rng):
        base = LogUniform(self.low, self.high) if self.log else Uniform(self.low, self.high)
        v = round(base.sample(rng) / self.q) * self.q
        return self._cast(min(max(v, self.low), self.high))

    def to_hyperopt(self, label):
        from hyperopt import hp
        from hyperopt.pyll import scope

        if self.log:
            expr = hp.qloguniform(label, math.log(self.low), math.log(self.high), self.q)
        else:
            expr = hp.quniform(label, self.low, self.high, self.q)
        return scope.int(expr) if self.integer else expr


@dataclass(frozen=True)
class QLogUniform(QUniform):
    log = True


@dataclass(frozen=True)
class RandInt(Domain):
    low: int
    high: int

    def __post_init__(self):
        if not (_is_int(self.low) and _is_int(self.high)):
            raise ValueError(f"bounds must be integers, but got low={self.low!r}, high={self.high!r}")
        if not self.low < self.high:
            raise ValueError(f"`low < high` must hold (high is excluded), but got (low={self.low}, high={self.high})")

    def sample(self, rng):
        return int(rng.integers(self.low, self.high))

    def to_hyperopt(self, label):
        from hyperopt import hp
        from hyperopt.pyll import scope

        return scope.int(hp.randint(label, self.low, self.high))


@dataclass(frozen=True)
class Choice(Domain):
    options: tuple

    def __post_init__(self):
        if not self.options:
            raise ValueError("needs at least one option, but got an empty list")
        if any(isinstance(o, (dict, list)) for o in self.options):
            raise ValueError(f"options must be scalars, but got {list(self.options)!r}")

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def to_hyperopt(self, label):
        from hyperopt import hp

        return hp.choice(label, list(self.options))


@dataclass(frozen=True)
class Grid(Choice):
    """Every value is tried by the grid searcher; other searchers treat a grid as a choice."""

    grid = True


DOMAINS: dict[str, Any] = {
    "uniform": lambda a: Uniform(*a),
    "loguniform": lambda a: LogUniform(*a),
    "quniform": lambda a: QUniform(*a),
    "qloguniform": lambda a: QLogUniform(*a),
    "randint": lambda a: RandInt(*a),
    "choice": lambda a: Choice(tuple(a)),
    "grid": lambda a: Grid(tuple(a)),
}
ARITY = {"uniform": 2, "loguniform": 2, "quniform": 3, "qloguniform": 3, "randint": 2}


def parse_value(value: Any, where: str):
    """A constant, or a Domain from a one-key mapping such as {loguniform: [1e-4, 1e-2]}."""
    if not isinstance(value, dict):
        if isinstance(value, list):
            raise SpaceError(f"{where}: a list {value!r} is ambiguous; write {{choice: {value!r}}} or {{grid: {value!r}}}")
        return value
    if len(value) != 1 or next(iter(value)) not in DOMAINS:
        raise SpaceError(f"{where}: {value!r} is not a domain; write one of: {', '.join(DOMAINS)} (e.g. {{uniform: [0.0, 0.5]}})")
    kind, args = next(iter(value.items()))
    if not isinstance(args, list):
        raise SpaceError(f"{where}: {kind} takes a list, but got {args!r}")
    if kind in ARITY and len(args) != ARITY[kind]:
        raise SpaceError(f"{where}: {kind} takes {ARITY[kind]} values, but got {len(args)}: {args!r}")
    try:
        return DOMAINS[kind](args)
    except ValueError as exc:
        raise SpaceError(f"{where}: {kind} {args!r}: {exc}") from None


def _sample(values: dict[str, Any], rng) -> dict[str, Any]:
    return {k: v.sample(rng) if isinstance(v, Domain) else v for k, v in values.items()}


def _expand(values: dict[str, Any], rng) -> list[dict[str, Any]]:
    """Every combination of the grid domains in `values`; other domains sampled once per combination."""
    keys = [k for k, v in values.items() if isinstance(v, Domain) and v.grid]
    combos = itertools.product(*(values[k].options for k in keys))
    return [{**_sample(values, rng), **dict(zip(keys, combo))} for combo in combos]


@dataclass(frozen=True)
class SearchSpace:
    """A parsed space: per-family sub-spaces (the conditional choice) and shared training values."""

    families: dict[str, dict[str, Any]]
    train: dict[str, Any]
    source: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # the mapping it was parsed from

    def hyperopt(self) -> dict[str, Any]:
        """A native HyperOpt space; the family choice is hyperopt's own conditional (hp.choice over dicts).

        Labels carry the family (`arch/lstm/hidden_size`), since two branches with the same label make
        hyperopt raise DuplicateLabel.
        """
        from hyperopt import hp

        def convert(values, prefix):
            return {k: v.to_hyperopt(f"{prefix}{k}") if isinstance(v, Domain) else v for k, v in values.items()}

        branches = [{"family": f, "model": convert(sub, f"arch/{f}/")} for f, sub in self.families.items()]
        return {"arch": hp.choice("arch", branches), **convert(self.train, "")}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One random config (uniform over families, then over each domain)."""
        names = list(self.families)
        family = names[int(rng.integers(len(names)))]
        return {"arch": {"family": family, "model": _sample(self.families[family], rng)}, **_sample(self.train, rng)}

    def grid(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Every config of the grid: families x their grid values x the shared grid values."""
        return [
            {"arch": {"family": family, "model": model}, **train}
            for family, sub in self.families.items()
            for model in _expand(sub, rng)
            for train in _expand(self.train, rng)
        ]

    def probes(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Configs that together use every option of every choice of every family (to check a space against a task)."""
        configs = []
        for family, sub in self.families.items():
            base = {"arch": {"family": family, "model": _sample(sub, rng)}, **_sample(self.train, rng)}
            configs.append(base)
            for key, domain in sub.items():
                for option in getattr(domain, "options", ()):
                    configs.append({**base, "arch": {"family": family, "model": {**base["arch"]["model"], key: option}}})
        return configs

    def hparam_names(self) -> list[str]:
        """Every flat hyperparameter name a trial of this space can have (union over families)."""
        names = {"family"} | {f"model/{k}" for sub in self.families.values() for k in sub} | set(TRAIN_KEYS)
        return sorted(names)


def parse_space(mapping: Any, source: str) -> SearchSpace:
    """Validates and parses a space mapping; `source` (a file name) prefixes every error."""
    if not isinstance(mapping, dict):
        raise SpaceError(f"{source}: a search space must be a mapping with 'families' and 'train', but got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - {"families", "train"})
    if unknown:
        raise SpaceError(f"{source}: unknown key '{unknown[0]}'; a search space has 'families' and 'train'")
    families = mapping.get("families")
    if not isinstance(families, dict) or not families:
        raise SpaceError(
            f"{source}: families: must map at least one model family to its sub-space; known families: {', '.join(sorted(MODELS))}"
        )
    parsed_families: dict[str, dict[str, Any]] = {}
    for family, sub in families.items():
        if family not in MODELS:
            raise SpaceError(f"{source}: families.{family}: unknown model family '{family}'; known: {', '.join(sorted(MODELS))}")
        sub = sub or {}
        if not isinstance(sub, dict):
            raise SpaceError(f"{source}: families.{family}: must be a mapping of hyperparameters, but got {sub!r}")
        known = MODELS[family].hyperparameters()
        for key in sub:
            if key not in known:
                raise SpaceError(f"{source}: families.{family}.{key}: unknown hyperparameter for {family}; known: {', '.join(known)}")
        parsed_families[family] = {k: parse_value(v, f"{source}: families.{family}.{k}") for k, v in sub.items()}
    train = mapping.get("train") or {}
    if not isinstance(train, dict):
        raise SpaceError(f"{source}: train: must be a mapping of hyperparameters, but got {train!r}")
    for key in train:
        if key not in TRAIN_KEYS:
            raise SpaceError(f"{source}: train.{key}: unknown training hyperparameter; known: {', '.join(TRAIN_KEYS)}")
    space = SearchSpace(parsed_families, {k: parse_value(v, f"{source}: train.{k}") for k, v in train.items()}, source, mapping)
    _check_values(space)
    return space


def _check_values(space: SearchSpace) -> None:
    """Builds the configs that a few samples give, so that a bad option (an unknown optimizer) fails now."""
    rng = np.random.default_rng(0)
    for family, sub in space.families.items():
        for _ in range(8):
            values = _sample(sub, rng)
            try:
                MODELS[family].make_config(values)
            except (TypeError, ValueError) as exc:
                raise SpaceError(f"{space.source}: families.{family}: {exc}") from None
    for _ in range(8):
        try:
            TrainConfig(**_sample(space.train, rng))
        except (TypeError, ValueError) as exc:
            raise SpaceError(f"{space.source}: train: {exc}") from None


def load_space(ref: Any, *, base: Path | None = None) -> SearchSpace:
    """A space from a bundled name (`charlm`), a YAML path (relative to `base`), or an inline mapping."""
    import yaml

    if isinstance(ref, dict):
        return parse_space(ref, "search_space (inline)")
    if not isinstance(ref, str) or not ref:
        raise SpaceError(f"search_space: must be a bundled name ({', '.join(BUNDLED)}), a YAML path or a mapping, but got {ref!r}")
    if ref in BUNDLED:
        path = BUNDLED[ref]
    else:
        path = Path(ref).expanduser()
        if not path.is_absolute() and base is not None and not path.exists():
            path = base / path
        if not path.is_file():
            raise SpaceError(f"search_space: '{ref}' is neither a bundled space ({', '.join(BUNDLED)}) nor an existing file")
    try:
        mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpaceError(f"{path}: cannot read as YAML: {exc}") from None
    return parse_space(mapping, str(path))
