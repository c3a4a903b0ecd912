"""The Optuna translation of a declarative space: define-by-run calls on an Optuna trial.

Optuna has no space object to build; a trial asks for each value as it goes, which makes the conditional
family choice plain code: the family is a categorical named `family`, then that family's hyperparameters
are asked for under `<family>/<name>` (so two families' `hidden_size` are separate parameters, as the
HyperOpt labels keep them apart) and the training ones under `<name>`. Only the trial's `suggest_*`
methods are called, so this module does not import optuna itself.
"""

from __future__ import annotations

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
from trainables.trial import FAMILY, TrialConfig


def _uniform(trial, name: str, d: Uniform):
    return trial.suggest_float(name, d.low, d.high)


def _loguniform(trial, name: str, d: LogUniform):
    return trial.suggest_float(name, d.low, d.high, log=True)


def _quniform(trial, name: str, d: QUniform):
    if d.integer:
        return trial.suggest_int(name, d.low, d.high, step=d.q)
    return trial.suggest_float(name, d.low, d.high, step=d.q)


def _qloguniform(trial, name: str, d: QLogUniform):
    # Optuna has no stepped log scale: draw on the log scale and round to the step, as hyperopt's qloguniform does.
    return d.quantize(trial.suggest_float(name, d.low, d.high, log=True))


def _randint(trial, name: str, d: RandInt):
    return trial.suggest_int(name, d.low, d.high - 1)  # the space's high is excluded, Optuna's included


def _choice(trial, name: str, d: Choice):
    return trial.suggest_categorical(name, list(d.options))  # Grid too: outside the grid searcher a grid is a choice


# Domain class -> suggester(trial, name, domain) -> value. Looked up along the class's MRO, so a subclass
# without its own entry (Grid) is suggested as its base is.
SUGGESTERS: dict[type, Callable[[Any, str, Any], Any]] = {
    QLogUniform: _qloguniform,
    QUniform: _quniform,
    LogUniform: _loguniform,
    Uniform: _uniform,
    RandInt: _randint,
    Choice: _choice,
}


def suggest_value(trial, name: str, domain: Any) -> Any:
    """One hyperparameter of a declarative space, drawn through an Optuna trial (constants pass through)."""
    if not isinstance(domain, Domain):
        return domain
    return translation(SUGGESTERS, domain, "Optuna", "SUGGESTERS")(trial, name, domain)


def suggest(trial, space) -> dict[str, Any]:
    """A Tune config ({"arch": {"family", "model"}, <train>}) for a SearchSpace, from an Optuna trial."""
    families = list(space.families)
    # A single family is not asked for: the study's parameters stay those of the space's domains.
    family = trial.suggest_categorical(FAMILY, families) if len(families) > 1 else families[0]
    model = {k: suggest_value(trial, f"{family}/{k}", v) for k, v in space.families[family].items()}
    return TrialConfig.to_tune(family, model, {k: suggest_value(trial, k, v) for k, v in space.train.items()})


class _Replay:
    """An Optuna trial stand-in that answers each `suggest_*` with a given config's value and notes its distribution."""

    def __init__(self, values: dict[str, Any]):
        self.values, self.params, self.distributions = values, {}, {}

    def _note(self, name: str, distribution) -> Any:
        self.params[name], self.distributions[name] = self.values[name], distribution
        return self.values[name]

    def suggest_float(self, name, low, high, *, step=None, log=False):
        from optuna.distributions import FloatDistribution

        return self._note(name, FloatDistribution(low, high, step=step, log=log))

    def suggest_int(self, name, low, high, *, step=1, log=False):
        from optuna.distributions import IntDistribution

        return self._note(name, IntDistribution(low, high, step=step, log=log))

    def suggest_categorical(self, name, choices):
        from optuna.distributions import CategoricalDistribution

        return self._note(name, CategoricalDistribution(choices))


def replay(space, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, distributions) that `suggest` asks for when it draws `config`: how an Optuna study is told
    about a trial it did not suggest (an earlier run's, or a given point's)."""
    trial = TrialConfig.from_tune(config)
    values = {FAMILY: trial.family, **{f"{trial.family}/{k}": v for k, v in trial.model.items()}}
    values.update({k: config[k] for k in space.train})
    recorder = _Replay(values)
    suggest(recorder, space)
    return recorder.params, recorder.distributions
