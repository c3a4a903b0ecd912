"""The HyperOpt translation of a declarative space: one native expression, conditional family choice included.

The family choice becomes HyperOpt's own conditional (`hp.choice("arch", [branch per family])`), so TPE
models each family's hyperparameters only on the trials of that family. Labels are `arch`, then
`arch/<family>/<name>` for a family's hyperparameters and `<name>` for the training ones; keep them
stable, since HyperOpt's saved trials (a resumed or extended search) record their values by label.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from search_spaces.domains import (
    Choice,
    Domain,
    LogUniform,
    QLogUniform,
    QUniform,
    RandInt,
    Uniform,
    translation,
)
from trainables.trial import ARCH, FAMILY


def _uniform(d: Uniform, label: str):
    from hyperopt import hp

    return hp.uniform(label, d.low, d.high)


def _loguniform(d: LogUniform, label: str):
    from hyperopt import hp

    # HyperOpt's log domains take the bounds' logarithms.
    return hp.loguniform(label, math.log(d.low), math.log(d.high))


def _quniform(d: QUniform, label: str):
    from hyperopt import hp
    from hyperopt.pyll import scope

    expr = hp.quniform(label, d.low, d.high, d.q)
    return scope.int(expr) if d.integer else expr  # hp.quniform yields floats; an int domain must give ints


def _qloguniform(d: QLogUniform, label: str):
    from hyperopt import hp
    from hyperopt.pyll import scope

    expr = hp.qloguniform(label, math.log(d.low), math.log(d.high), d.q)
    return scope.int(expr) if d.integer else expr


def _randint(d: RandInt, label: str):
    from hyperopt import hp
    from hyperopt.pyll import scope

    # hp.randint(label, low, high) excludes high, as ours does; scope.int turns its numpy int into an int.
    return scope.int(hp.randint(label, d.low, d.high))


def _choice(d: Choice, label: str):
    from hyperopt import hp

    return hp.choice(label, list(d.options))  # Grid too: outside the grid searcher a grid is a choice


# Domain class -> converter(domain, label) -> HyperOpt expression. Looked up along the class's MRO, so a
# subclass without its own entry (Grid) converts as its base does.
CONVERTERS: dict[type, Callable[[Any, str], Any]] = {
    QLogUniform: _qloguniform,
    QUniform: _quniform,
    LogUniform: _loguniform,
    Uniform: _uniform,
    RandInt: _randint,
    Choice: _choice,
}


def to_hyperopt_domain(domain: Any, label: str) -> Any:
    """One hyperparameter as a HyperOpt expression labelled `label`; a constant passes through."""
    if not isinstance(domain, Domain):
        return domain
    return translation(CONVERTERS, domain, "HyperOpt", "CONVERTERS")(domain, label)


def _convert(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k: to_hyperopt_domain(v, f"{prefix}{k}") for k, v in values.items()}


def to_hyperopt(space) -> dict[str, Any]:
    """A native HyperOpt space for a SearchSpace, whose samples are Tune configs.

    Labels carry the family (`arch/lstm/hidden_size`), since two branches with the same label make
    hyperopt raise DuplicateLabel.
    """
    from hyperopt import hp

    # Built by hand rather than with TrialConfig.to_tune: the model values are expressions here, and
    # hp.choice must wrap the whole {"family", "model"} branch for the choice to be conditional.
    branches = [{FAMILY: family, "model": _convert(sub, f"{ARCH}/{family}/")} for family, sub in space.families.items()]
    return {ARCH: hp.choice(ARCH, branches), **_convert(space.train, "")}


def _index_or_value(domain: Any, value: Any) -> Any:
    # HyperOpt records a choice by the option's index, every other domain by the value itself.
    return list(domain.options).index(value) if isinstance(domain, Choice) else value


def hyperopt_values(space, config: dict[str, Any]) -> dict[str, list]:
    """A Tune config of `space` as the `vals` of a HyperOpt trial document of `to_hyperopt(space)`: each label's
    value in a one-element list, and an empty list for the labels of the families the config did not take
    (so that TPE can learn from a trial it did not suggest: an earlier run's or a given point's)."""
    from trainables.trial import TrialConfig

    trial = TrialConfig.from_tune(config)
    families = list(space.families)
    vals: dict[str, list] = {ARCH: [families.index(trial.family)]}
    for family, sub in space.families.items():
        for key, domain in sub.items():
            if isinstance(domain, Domain):
                vals[f"{ARCH}/{family}/{key}"] = [_index_or_value(domain, trial.model[key])] if family == trial.family else []
    vals.update({k: [_index_or_value(d, config[k])] for k, d in space.train.items() if isinstance(d, Domain)})
    return vals
