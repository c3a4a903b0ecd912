"""The ConfigSpace translation of a declarative space, for BOHB: a conditional space and the way back.

The family is a categorical `family`; a family's hyperparameters are named `<family>:<name>` and are
active only when `family` equals that family (an EqualsCondition), so BOHB's kernel density models each
family's values on that family's trials only; training hyperparameters keep their names. ConfigSpace 1.x
has no quantized domains, so a quantized value is drawn continuous (integer when the domain is) and
rounded to its step on the way back, as the Optuna translation does for a stepped log scale.
"""

from __future__ import annotations

from typing import Any

from search_spaces.domains import Choice, Domain, LogUniform, QUniform, RandInt, Uniform
from trainables.trial import FAMILY, TrialConfig

SEP = ":"  # `/` would make Ray's TuneBOHB unflatten the name into a nested dict


def _name(family: str, key: str) -> str:
    return f"{family}{SEP}{key}"


def _hyperparameter(name: str, d: Domain):
    import ConfigSpace as CS

    if isinstance(d, Choice):  # Grid too
        return CS.CategoricalHyperparameter(name, list(d.options))
    if isinstance(d, QUniform):
        cls = CS.UniformIntegerHyperparameter if d.integer else CS.UniformFloatHyperparameter
        return cls(name, d.low, d.high, log=d.log)
    if isinstance(d, RandInt):
        return CS.UniformIntegerHyperparameter(name, d.low, d.high - 1)  # our high is excluded, ConfigSpace's included
    if isinstance(d, Uniform):
        return CS.UniformFloatHyperparameter(name, d.low, d.high, log=isinstance(d, LogUniform))
    raise TypeError(f"no ConfigSpace translation for {type(d).__name__}; add one to _hyperparameter")


def to_configspace(space, seed: int | None = None):
    """A ConfigSpace ConfigurationSpace for a SearchSpace (constants are left out: they need no modelling)."""
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=seed)
    families = list(space.families)
    choice = CS.CategoricalHyperparameter(FAMILY, families) if len(families) > 1 else None
    if choice is not None:
        cs.add(choice)
    for family, sub in space.families.items():
        for key, d in sub.items():
            if isinstance(d, Domain):
                hp = _hyperparameter(_name(family, key), d)
                cs.add(hp)
                if choice is not None:
                    cs.add(CS.EqualsCondition(hp, choice, family))
    cs.add([_hyperparameter(k, d) for k, d in space.train.items() if isinstance(d, Domain)])
    return cs


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value  # ConfigSpace hands out numpy scalars


def _back(d: Any, value: Any) -> Any:
    if not isinstance(d, Domain):
        return d
    value = _plain(value)
    return d.quantize(value) if isinstance(d, QUniform) else value


def from_configspace(space, values: dict[str, Any]) -> dict[str, Any]:
    """The Tune config of one ConfigSpace configuration (a flat dict) of `to_configspace(space)`."""
    family = _plain(values[FAMILY]) if len(space.families) > 1 else next(iter(space.families))
    model = {k: _back(d, values.get(_name(family, k))) for k, d in space.families[family].items()}
    return TrialConfig.to_tune(family, model, {k: _back(d, values.get(k)) for k, d in space.train.items()})


def configspace_values(space, config: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `from_configspace`: a Tune config of the space as a ConfigSpace configuration's values."""
    trial = TrialConfig.from_tune(config)
    out: dict[str, Any] = {FAMILY: trial.family} if len(space.families) > 1 else {}
    out.update({_name(trial.family, k): trial.model[k] for k, d in space.families[trial.family].items() if isinstance(d, Domain)})
    out.update({k: config[k] for k, d in space.train.items() if isinstance(d, Domain)})
    return out
