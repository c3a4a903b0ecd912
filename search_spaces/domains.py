"""The domains of a declarative space: what values one hyperparameter may take, and how to draw one.

A domain knows its bounds (checked when it is built, with a message stating the rule and the value) and how
to sample itself with a numpy Generator; it knows no search library. The translations to HyperOpt and
Optuna live in `hyperopt_space` and `optuna_space`, one module per library, so adding a library touches
neither this module nor the other translation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


class SpaceError(ValueError):
    """A search space that cannot be used; the message names the file, the key, the value and the rule."""


def _is_int(v) -> bool:
    # bool is an int subclass; `randint: [false, true]` is a mistake, not a range.
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Domain:
    """A range or set of values for one hyperparameter.

    `grid`: the grid searcher enumerates every value. `log`: sampled on a log scale (reports draw the axis so).
    """

    grid = False
    log = False

    def sample(self, rng: np.random.Generator):
        raise NotImplementedError

    def values(self) -> tuple | None:
        """Every value the domain can take, in order; None for a continuous one."""
        return None


@dataclass(frozen=True)
class Uniform(Domain):
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float

    def __post_init__(self):
        if not (_number(self.low) and _number(self.high)):
            raise ValueError(f"bounds must be numbers, but got low={self.low!r}, high={self.high!r}")
        if not self.low < self.high:
            raise ValueError(f"`low < high` must hold, but got (low={self.low}, high={self.high})")

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A float in [low, high] whose logarithm is uniform (learning rates, weight decay)."""

    log = True

    def __post_init__(self):
        super().__post_init__()
        if not self.low > 0:
            raise ValueError(f"`low > 0` must hold for a log scale, but got (low={self.low}, high={self.high})")

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclass(frozen=True)
class QUniform(Domain):
    """A value in [low, high] rounded to a multiple of q; an int when low, high and q are all ints."""

    low: float
    high: float
    q: float

    def __post_init__(self):
        self._base()  # the bounds' own rules (and `low > 0` on a log scale)
        if not (_number(self.q) and self.q > 0):
            raise ValueError(f"`q > 0` must hold, but got q={self.q!r}")

    def _base(self) -> Uniform:
        """The continuous domain a value is drawn from before it is rounded to the step."""
        return (LogUniform if self.log else Uniform)(self.low, self.high)

    @property
    def integer(self) -> bool:
        return _is_int(self.low) and _is_int(self.high) and _is_int(self.q)

    def quantize(self, value: float):
        """A continuous draw rounded to the step, kept within the bounds, as an int for integer domains.

        Shared with the translations whose library has no stepped domain of this kind (Optuna's log scale).
        """
        v = min(max(round(value / self.q) * self.q, self.low), self.high)
        return int(round(v)) if self.integer else float(v)

    def sample(self, rng):
        return self.quantize(self._base().sample(rng))

    def values(self) -> tuple:
        """The steps between the bounds, quantized as a draw is (at most one value per step of q)."""
        steps = int(math.floor((self.high - self.low) / self.q + 1e-9)) + 2
        return tuple(dict.fromkeys(self.quantize(self.low + k * self.q) for k in range(steps)))


@dataclass(frozen=True)
class QLogUniform(QUniform):
    """A QUniform drawn on a log scale (layer widths)."""

    log = True


@dataclass(frozen=True)
class RandInt(Domain):
    """An int in [low, high): high is excluded, as in numpy and HyperOpt."""

    low: int
    high: int

    def __post_init__(self):
        if not (_is_int(self.low) and _is_int(self.high)):
            raise ValueError(f"bounds must be integers, but got low={self.low!r}, high={self.high!r}")
        if not self.low < self.high:
            raise ValueError(f"`low < high` must hold (high is excluded), but got (low={self.low}, high={self.high})")

    def sample(self, rng):
        return int(rng.integers(self.low, self.high))

    def values(self) -> tuple:
        return tuple(range(self.low, self.high))


@dataclass(frozen=True)
class Choice(Domain):
    """One of a few scalar options, unordered."""

    options: tuple

    def __post_init__(self):
        if not self.options:
            raise ValueError("needs at least one option, but got an empty list")
        if any(isinstance(o, (dict, list)) for o in self.options):
            raise ValueError(f"options must be scalars, but got {list(self.options)!r}")

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def values(self) -> tuple:
        return tuple(dict.fromkeys(self.options))  # a repeated option is one configuration


@dataclass(frozen=True)
class Grid(Choice):
    """Every value is tried by the grid searcher; other searchers treat a grid as a choice."""

    grid = True


# The YAML name of each domain -> its constructor from the YAML list.
DOMAINS: dict[str, Callable[[list], Domain]] = {
    "uniform": lambda a: Uniform(*a),
    "loguniform": lambda a: LogUniform(*a),
    "quniform": lambda a: QUniform(*a),
    "qloguniform": lambda a: QLogUniform(*a),
    "randint": lambda a: RandInt(*a),
    "choice": lambda a: Choice(tuple(a)),
    "grid": lambda a: Grid(tuple(a)),
}
# How many values the fixed-size domains take (checked first, so the error names the count, not a TypeError).
ARITY = {"uniform": 2, "loguniform": 2, "quniform": 3, "qloguniform": 3, "randint": 2}


def parse_value(value: Any, where: str):
    """A constant, or a Domain from a one-key mapping such as {loguniform: [1e-4, 1e-2]}; `where` prefixes errors."""
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


def translation(table: dict[type, Any], domain: Domain, library: str, table_name: str):
    """The entry of a library's translation table for `domain`, looked up along its class's MRO, so a subclass
    without its own entry (Grid) translates as its base does."""
    for cls in type(domain).__mro__:
        if cls in table:
            return table[cls]
    raise TypeError(f"no {library} translation for {type(domain).__name__}; add one to {table_name}")


def sample_values(values: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One draw of every domain in `values` (in their order, so a seeded draw is reproducible); constants pass."""
    return {k: v.sample(rng) if isinstance(v, Domain) else v for k, v in values.items()}


def combination_count(values: dict[str, Any]) -> int | None:
    """How many combinations of values a mapping of fixed values and domains takes; None when a domain is continuous."""
    sizes = [1 if not isinstance(v, Domain) else (None if v.values() is None else len(v.values())) for v in values.values()]
    return None if None in sizes else math.prod(sizes)


def combinations(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of a finite mapping's values (a fixed value is its own only option), in a fixed order."""
    options = [v.values() if isinstance(v, Domain) else (v,) for v in values.values()]
    return [dict(zip(values, combo)) for combo in itertools.product(*options)]
