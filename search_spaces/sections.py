"""The sections of a search space mapping, each parsed and checked: a family's sub-space, the shared training values
(`train:`) and the searched task options (`task:`). `space.parse_space` puts them together."""

from __future__ import annotations

from typing import Any, Mapping

from search_spaces.domains import Domain, SpaceError, parse_value
from trainables.trial import TASK_KEYS, TRAIN_KEYS


def parse_family(family: str, sub: Any, source: str, registry: Mapping[str, Any] | None) -> dict[str, Any]:
    """One family's sub-space; with a registry, the family and its hyperparameter names are checked."""
    if registry is not None and family not in registry:
        raise SpaceError(f"{source}: families.{family}: unknown model family '{family}'; known: {', '.join(sorted(registry))}")
    sub = sub or {}
    if not isinstance(sub, dict):
        raise SpaceError(f"{source}: families.{family}: must be a mapping of hyperparameters, but got {sub!r}")
    if registry is not None:
        known = registry[family].hyperparameters()
        for key in sub:
            if key not in known:
                raise SpaceError(f"{source}: families.{family}.{key}: unknown hyperparameter for {family}; known: {', '.join(known) or 'none'}")
    return {k: parse_value(v, f"{source}: families.{family}.{k}") for k, v in sub.items()}


def parse_train(train: Any, source: str, check: bool) -> dict[str, Any]:
    """The shared training sub-space; with `check`, every key must be a TrainConfig field."""
    train = train or {}
    if not isinstance(train, dict):
        raise SpaceError(f"{source}: train: must be a mapping of hyperparameters, but got {train!r}")
    unknown = [key for key in train if key not in TRAIN_KEYS] if check else []
    if unknown:
        key = unknown[0]
        raise SpaceError(f"{source}: train.{key}: unknown training hyperparameter; known: {', '.join(TRAIN_KEYS)}")
    return {k: parse_value(v, f"{source}: train.{k}") for k, v in train.items()}


def parse_task(task: Any, source: str) -> dict[str, Any]:
    """The searched task options (`task: {window: {choice: [12, 24, 48]}}`): known keys, each a choice or a constant,
    since every value's data is prepared before the search."""
    task = task or {}
    if not isinstance(task, dict):
        raise SpaceError(f"{source}: task: must be a mapping of task options, but got {task!r}")
    parsed = {}
    for key, value in task.items():
        if key not in TASK_KEYS:
            raise SpaceError(f"{source}: task.{key}: not a task option a space can search; searchable: {', '.join(TASK_KEYS)}")
        domain = parse_value(value, f"{source}: task.{key}")
        options = getattr(domain, "options", None) if isinstance(domain, Domain) else [domain]
        if options is None or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 1 for o in options):
            raise SpaceError(f"{source}: task.{key}: value {value!r}: must be a positive integer or a choice of them "
                             "(each value's data is prepared once, before the search)")
        parsed[key] = domain
    return parsed
