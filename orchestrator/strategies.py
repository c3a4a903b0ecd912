"""Named searchers and schedulers: the one module that knows the pairings, kept apart from each other.

A searcher decides *what* to try (it never sees the scheduler); a scheduler decides *when to stop* (it
never sees the space). Both registries are plain dicts of builders; Ray is imported inside the builders
so that validating a config stays fast.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

import numpy as np

from search_spaces import SearchSpace


def hyperopt_startup_trials(num_samples: int) -> int:
    """Random trials before TPE starts modelling: a third of the budget, at least 3, at most 20 (hyperopt's default).

    Ray's default of 20 would leave a 16-trial search entirely random.
    """
    return max(3, min(20, num_samples // 3))


def _hyperopt(space: SearchSpace, metric: str, mode: str, seed: int, num_samples: int):
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch(
        space=space.hyperopt(),
        metric=metric,
        mode=mode,
        n_initial_points=hyperopt_startup_trials(num_samples),
        random_state_seed=seed,
    )


def _declarative_searcher():
    """A Tune Searcher that replays configs from our own sampler (random or grid); defined lazily to import Ray late."""
    from ray.tune.search import Searcher

    class DeclarativeSearcher(Searcher):
        """Random or grid search over a declarative space, seeded, with its state saved for resume."""

        def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int, grid: bool):
            super().__init__(metric=metric, mode=mode)
            self.space, self.grid = space, grid
            self.rng = np.random.default_rng(seed)
            self.pending = space.grid(self.rng) if grid else []
            self.issued = 0

        def suggest(self, trial_id: str):
            if self.grid:
                if not self.pending:
                    return Searcher.FINISHED
                self.issued += 1
                return self.pending.pop(0)
            self.issued += 1
            return self.space.sample(self.rng)

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
            pass

        def save(self, checkpoint_path: str):
            with open(checkpoint_path, "wb") as f:
                pickle.dump({"rng": self.rng.bit_generator.state, "pending": self.pending, "issued": self.issued}, f)

        def restore(self, checkpoint_path: str):
            with open(checkpoint_path, "rb") as f:
                state = pickle.load(f)
            self.rng.bit_generator.state = state["rng"]
            self.pending, self.issued = state["pending"], state["issued"]

    return DeclarativeSearcher


def _random(space, metric, mode, seed, num_samples):
    return _declarative_searcher()(space, metric, mode, seed, grid=False)


def _grid(space, metric, mode, seed, num_samples):
    return _declarative_searcher()(space, metric, mode, seed, grid=True)


# name -> builder(space, metric, mode, seed, num_samples) -> ray.tune Searcher
SEARCHERS: dict[str, Callable[..., Any]] = {"hyperopt": _hyperopt, "random": _random, "grid": _grid}
# Modules a searcher's builder imports: the runner imports them in a thread while Ray starts, which mostly
# waits on its processes (HyperOpt pulls in scipy.stats: ~0.6 s of the driver's start-up otherwise).
SEARCHER_IMPORTS: dict[str, tuple[str, ...]] = {"hyperopt": ("hyperopt",), "random": (), "grid": ()}
SEARCHER_HELP = {
    "hyperopt": "Tree-structured Parzen Estimator (HyperOpt), conditional on the model family (default)",
    "random": "uniform random sampling of the space",
    "grid": "every combination of `grid` values (other domains sampled once per point)",
}


def _asha(sched):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=sched.max_epochs,
        grace_period=sched.grace_period,
        reduction_factor=sched.reduction_factor,
    )


def _fifo(sched):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


# name -> builder(SchedulerConfig) -> ray.tune TrialScheduler
SCHEDULERS: dict[str, Callable[..., Any]] = {"asha": _asha, "fifo": _fifo}
SCHEDULER_HELP = {
    "asha": "asynchronous successive halving: stops the worst trials at rungs grace_period * reduction_factor^k (default)",
    "fifo": "no early stopping: every trial runs max_epochs",
}
