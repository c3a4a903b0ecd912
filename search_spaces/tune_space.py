"""The Ray Tune translation of a declarative space's domains (`ray.tune.loguniform(...)` and friends).

Used where Ray itself samples a value: population-based training resamples a mutated training
hyperparameter from its domain. Ray is imported inside the function, so importing this module is cheap.
"""

from __future__ import annotations

from typing import Any

from search_spaces.domains import (
    Choice,
    Domain,
    LogUniform,
    QLogUniform,
    QUniform,
    RandInt,
    Uniform,
)


def to_tune_domain(domain: Domain) -> Any:
    """One domain as Ray's: a Float/Integer domain, or a plain list for a choice (PBT then steps to a neighbour)."""
    from ray import tune

    if isinstance(domain, Choice):  # Grid too
        return list(domain.options)
    if isinstance(domain, QUniform):
        log = isinstance(domain, QLogUniform)
        if domain.integer:  # Ray's integer domains include their upper bound, as ours do
            return (tune.qlograndint if log else tune.qrandint)(domain.low, domain.high, domain.q)
        return (tune.qloguniform if log else tune.quniform)(domain.low, domain.high, domain.q)
    if isinstance(domain, LogUniform):
        return tune.loguniform(domain.low, domain.high)
    if isinstance(domain, Uniform):
        return tune.uniform(domain.low, domain.high)
    if isinstance(domain, RandInt):
        return tune.randint(domain.low, domain.high)
    raise TypeError(f"no Ray Tune translation for {type(domain).__name__}; add one to to_tune_domain")

