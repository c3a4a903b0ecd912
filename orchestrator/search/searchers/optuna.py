"""The Optuna searcher: Optuna's multivariate, grouped TPE over the define-by-run space (`search_spaces/optuna_space.py`),
and how it learns a trial it did not suggest. Optuna and Ray load when one is built."""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING

from orchestrator.search.searchers.base import (
    STARTUP_FRACTION,
    Searcher,
    startup_trials,
)
from search_spaces import SearchSpace
from trainables import constants as C

INFEASIBLE_CONSTRAINT = "infeasible"  # > 0 on a trial whose configuration could not run

if TYPE_CHECKING:
    from orchestrator.search.warm_start import Evaluated


def _optuna_class():
    """Ray's OptunaSearch over our define-by-run space; defined lazily to import Ray late."""
    from ray.tune.search.optuna import OptunaSearch

    class DefineByRunSearch(OptunaSearch):
        """OptunaSearch whose config is exactly what the define-by-run function returns: Ray's own merges in every
        value the function asked for by its Optuna name (`lstm/hidden_size`), which would add stray keys."""

        def _suggest_from_define_by_run_func(self, func, ot_trial):
            return func(ot_trial)

        def on_trial_complete(self, trial_id, result=None, error=False):
            if result and result.get(C.INFEASIBLE) and trial_id in self._ot_trials:
                # Optuna's own way to learn a region that cannot run: a violated constraint, which keeps the trial
                # out of TPE's good group whatever its value (the worst value is reported too).
                self._ot_trials[trial_id].set_constraint(INFEASIBLE_CONSTRAINT, 1.0)
            super().on_trial_complete(trial_id, result, error)

    return DefineByRunSearch


def build(space: SearchSpace, metric: str, mode: str, seed: int, num_samples: int, startup_fraction: float = STARTUP_FRACTION):
    import optuna

    from search_spaces.optuna_space import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study created
    # `multivariate` and `group` are marked experimental (the interface may change); their use is deliberate.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Multivariate TPE models the hyperparameters jointly; `group` splits the space by which parameters a trial
    # has, so each family's sub-space is modelled on that family's trials only (the conditional space).
    sampler = optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, n_startup_trials=startup_trials(num_samples, startup_fraction), constant_liar=True
    )
    return _optuna_class()(space=functools.partial(suggest, space=space), metric=metric, mode=mode, sampler=sampler)


def learn(searcher, space, item: Evaluated) -> None:
    """Adds a finished trial to an OptunaSearch's study, with the distributions our define-by-run space asks for."""
    import optuna

    from search_spaces.optuna_space import replay

    params, distributions = replay(space, item.config)
    constraints = {INFEASIBLE_CONSTRAINT: 1.0} if item.infeasible else None
    searcher._ot_study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=item.value,
                                                           constraints=constraints))




RECORD = Searcher("optuna", build, "Optuna's TPE, multivariate and grouped by model family (define-by-run space)",
                  imports=("optuna",), learn=learn)
