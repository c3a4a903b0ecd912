"""The random and grid searchers: our own sampler over the declarative space (seeded, its state saved for resume).
They learn nothing from trials they did not suggest; the grid runs its grid only (no points first, no extension)."""

from __future__ import annotations

import pickle
from typing import Optional

import numpy as np

from orchestrator.search.searchers.base import Searcher
from search_spaces import SearchSpace


def _declarative_searcher():
    """A Tune Searcher that replays configs from our own sampler (random or grid); defined lazily to import Ray late."""
    from ray.tune.search import Searcher as TuneSearcher

    class DeclarativeSearcher(TuneSearcher):
        """Random or grid search over a declarative space, seeded, with its state saved for resume."""

        def __init__(self, space: SearchSpace, metric: str, mode: str, seed: int, grid: bool, repeats: int = 1):
            super().__init__(metric=metric, mode=mode)
            self.space, self.grid = space, grid
            self.rng = np.random.default_rng(seed)
            # `num_samples` repeats the whole grid; each repeat samples the non-grid domains afresh.
            self.pending = [config for _ in range(repeats) for config in space.grid(self.rng)] if grid else []
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
    """`num_samples` here is the planned trial count, the grid's size times the experiment's num_samples."""
    return _declarative_searcher()(space, metric, mode, seed, grid=True, repeats=max(1, num_samples // space.grid_size(seed)))


def _random(space, metric, mode, seed, num_samples, startup_fraction=None):
    return _declarative_searcher()(space, metric, mode, seed, grid=False)


def _grid(space, metric, mode, seed, num_samples, startup_fraction=None):
    """`num_samples` here is the planned trial count, the grid's size times the experiment's num_samples."""
    return _declarative_searcher()(space, metric, mode, seed, grid=True, repeats=max(1, num_samples // space.grid_size(seed)))


def _grid_problem(space: SearchSpace) -> Optional[str]:
    return None if space.has_grid() else f"the space {space.source} has no grid domains to enumerate"


def _grid_trials(space: SearchSpace, num_samples: int, seed: int) -> int:
    return space.grid_size(seed) * num_samples  # num_samples repeats the whole grid


RANDOM = Searcher("random", _random, "uniform random sampling of the space")
GRID = Searcher("grid", _grid, "every combination of `grid` values (other domains sampled once per point)",
                problem=_grid_problem, planned=_grid_trials, runs_given_points=False)
