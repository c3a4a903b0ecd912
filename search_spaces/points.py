"""Points to evaluate: configurations a user gives in flat form (as the leaderboard shows them), checked
against a space and turned into Tune configs that the searcher runs first.

A point names `family`, then the family's hyperparameters (`hidden_size`, or `model/hidden_size` as in the
leaderboard) and the training ones (`lr`); every hyperparameter the space searches needs a value (the
searcher learns from the point as from one of its own trials), and each value must lie in its domain.
"""

from __future__ import annotations

from typing import Any

from search_spaces.domains import Choice, Domain, QUniform, RandInt, SpaceError, Uniform
from trainables.trial import FAMILY, MODEL_PREFIX, TrialConfig


def within(domain: Any, value: Any) -> bool:
    """Whether `value` is one that `domain` may give (a constant: only itself)."""
    if not isinstance(domain, Domain):
        return value == domain
    if isinstance(domain, Choice):
        return any(value == o and isinstance(value, bool) == isinstance(o, bool) for o in domain.options)  # True is not 1
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(domain, RandInt):
        return isinstance(value, int) and domain.low <= value < domain.high
    if isinstance(domain, QUniform):
        return domain.low <= value <= domain.high and (isinstance(value, int) or not domain.integer)
    return isinstance(domain, Uniform) and domain.low <= value <= domain.high


def _describe(domain: Any) -> str:
    if not isinstance(domain, Domain):
        return f"the constant {domain!r}"
    if isinstance(domain, Choice):
        return f"one of {list(domain.options)!r}"
    high = "excluded" if isinstance(domain, RandInt) else "included"
    kind = "an integer" if isinstance(domain, RandInt) or getattr(domain, "integer", False) else "a number"
    return f"{kind} in [{domain.low}, {domain.high}] ({high})"


def parse_point(point: Any, space, where: str) -> dict[str, Any]:
    """One point as a Tune config of `space`; `where` (e.g. `exp.yaml: points_to_evaluate[0]`) prefixes errors."""
    if not isinstance(point, dict):
        raise SpaceError(f"{where}: a point is a mapping of hyperparameters (family, lr, ...), but got {point!r}")
    if len(space.families) > 1 and point.get(FAMILY) not in space.families:
        raise SpaceError(f"{where}.{FAMILY}: value {point.get(FAMILY)!r}: must be one of the space's families: {', '.join(space.families)}")
    family = point.get(FAMILY, next(iter(space.families)))
    sub = space.families.get(family)
    if sub is None:
        raise SpaceError(f"{where}.{FAMILY}: value {family!r}: must be one of the space's families: {', '.join(space.families)}")
    given = {k.removeprefix(MODEL_PREFIX): v for k, v in point.items() if k != FAMILY}
    for key in given:
        if key not in sub and key not in space.train:
            known = [FAMILY, *sub, *space.train]
            raise SpaceError(f"{where}: unknown key '{key}' for family {family}; known: {', '.join(known)}")
    values = {**{k: d for k, d in {**sub, **space.train}.items() if not isinstance(d, Domain)}, **given}
    for key, domain in {**sub, **space.train}.items():
        if key not in values:
            raise SpaceError(f"{where}: key '{key}' is missing: every hyperparameter the space searches needs a value")
        if not within(domain, values[key]):
            raise SpaceError(f"{where}.{key}: value {values[key]!r} is outside the space: must be {_describe(domain)}")
    config = TrialConfig.to_tune(family, {k: values[k] for k in sub}, {k: values[k] for k in space.train})
    TrialConfig.from_tune(config)  # the training values' own rules (TrainConfig)
    return config


def parse_points(points: list, space, source: str) -> list[dict[str, Any]]:
    """Every point of `points_to_evaluate` as a Tune config (see `parse_point`)."""
    return [parse_point(p, space, f"{source}: points_to_evaluate[{i}]") for i, p in enumerate(points)]
