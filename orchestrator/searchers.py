"""The searchers a search can use, one record each: builder, imports to load ahead, help, what it needs.

A searcher decides *what* to try; it never sees the scheduler. To add one, add a `Searcher` record to
SEARCHERS (and, if it needs its own space translation, a module in `search_spaces/`): validation,
`orchestrator list`, the planned-trial count and the parametrized tests pick it up from there. Ray and the
search libraries are imported inside the builders, so validating a config and reading a run stay fast.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from search_spaces import SearchSpace


def hyperopt_startup_trials(num_samples: int) -> int:
    """Random trials before TPE starts modelling: a third of the budget, at least 3, at most 20 (hyperopt's default).

    Ray's default of 20 would leave a 16-trial search entirely random.
    """
    return max(3, min(20, num_samples // 3))


def _hyperopt(space: SearchSpace, metric: str, mode: str, seed: int, num_samples: int):
    from ray.tune.search.hyperopt import HyperOptSearch

    from search_spaces.hyperopt_space import to_hyperopt

    return HyperOptSearch(
        space=to_hyperopt(space), metric=metric, mode=mode, n_initial_points=hyperopt_startup_trials(num_samples), random_state_seed=seed
    )


def _declarative_searcher():
    """A Tune Searcher that replays configs from our own sampler (random or grid); defined lazily to import Ray late."""
    from ray.tune.search import Searcher as TuneSearcher

    class DeclarativeSearcher(TuneSearcher):
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
                    return TuneSearcher.FINISHED
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


def _grid_problem(space: SearchSpace) -> Optional[str]:
    return None if space.has_grid() else f"the space {space.source} has no grid domains to enumerate"


def _grid_trials(space: SearchSpace, num_samples: int, seed: int) -> int:
    return space.grid_size(seed) * num_samples  # num_samples repeats the whole grid


@dataclass(frozen=True)
class Searcher:
    """A searcher: `build(space, metric, mode, seed, num_trials)` returns Ray Tune's Searcher.

    imports: modules its builder imports, loaded in a thread while Ray starts (which mostly waits on its
    processes; HyperOpt pulls in scipy.stats, ~0.6 s of the driver's start-up otherwise).
    problem(space): why this searcher cannot search that space, or None.
    planned(space, num_samples, seed): how many trials it runs.
    """

    name: str
    build: Callable[..., Any]
    help: str
    imports: tuple[str, ...] = ()
    problem: Callable[[SearchSpace], Optional[str]] = lambda space: None
    planned: Callable[[SearchSpace, int, int], int] = lambda space, num_samples, seed: num_samples


SEARCHERS: dict[str, Searcher] = {
    "hyperopt": Searcher("hyperopt", _hyperopt, "Tree-structured Parzen Estimator (HyperOpt), conditional on the model family (default)",
                         imports=("hyperopt",)),
    "random": Searcher("random", _random, "uniform random sampling of the space"),
    "grid": Searcher("grid", _grid, "every combination of `grid` values (other domains sampled once per point)",
                     problem=_grid_problem, planned=_grid_trials),
}
DEFAULT_SEARCHER = "hyperopt"
