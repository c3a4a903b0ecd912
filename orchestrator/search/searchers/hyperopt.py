"""The HyperOpt searcher: TPE over the space's HyperOpt translation (`search_spaces/hyperopt_space.py`), and how it
learns a trial it did not suggest. HyperOpt and Ray load when one is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.search.searchers.base import (
    STARTUP_FRACTION,
    Searcher,
    startup_trials,
)
from search_spaces import SearchSpace

if TYPE_CHECKING:
    from orchestrator.search.warm_start import Evaluated


def build(space: SearchSpace, metric: str, mode: str, seed: int, num_samples: int, startup_fraction: float = STARTUP_FRACTION):
    from ray.tune.search.hyperopt import HyperOptSearch

    from search_spaces.hyperopt_space import to_hyperopt

    return HyperOptSearch(
        space=to_hyperopt(space), metric=metric, mode=mode, n_initial_points=startup_trials(num_samples, startup_fraction), random_state_seed=seed
    )


def learn(searcher, space, item: Evaluated) -> None:
    """Adds a finished trial to a HyperOptSearch's trials, as if TPE had suggested it."""
    from search_spaces.hyperopt_space import hyperopt_values

    trials = searcher._hpopt_trials
    tid = trials.new_trial_ids(1)[0]
    vals = hyperopt_values(space, item.config)
    misc = {"tid": tid, "cmd": ("domain_attachment", "FMinIter_Domain"), "workdir": None,
            "idxs": {k: [tid] if v else [] for k, v in vals.items()}, "vals": vals}
    result = {"loss": searcher.metric_op * item.value, "status": "ok"}
    doc = trials.new_trial_docs([tid], [None], [result], [misc])[0]
    doc["state"] = 2  # hyperopt.JOB_STATE_DONE
    trials.insert_trial_docs([doc])
    trials.refresh()




RECORD = Searcher("hyperopt", build, "Tree-structured Parzen Estimator (HyperOpt), conditional on the model family (default)",
                  imports=("hyperopt",), learn=learn)
