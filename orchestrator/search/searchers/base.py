"""What every searcher shares: the record that registers one, and how many random trials TPE runs first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from search_spaces import SearchSpace

# Random trials before TPE (HyperOpt's or Optuna's) models the results, as a fraction of the search's trials;
# `python -m benchmarks.quality --startup-fraction F` measures other values against random search.
STARTUP_FRACTION = 1 / 3


def startup_trials(num_samples: int, fraction: float = STARTUP_FRACTION) -> int:
    """Random trials before TPE starts modelling: `fraction` of the trials, at least 3, at most 20
    (hyperopt's default). Ray's default of 20 would leave a 16-trial search entirely random."""
    return max(3, min(20, int(num_samples * fraction)))


def distinct_trials(space: SearchSpace, num_samples: int) -> int:
    """The trials a search of `num_samples` runs: no more than the space's distinct configurations, each run once
    (`orchestrator.search.no_repeats`)."""
    count = space.distinct_count()
    return num_samples if count is None else min(num_samples, count)


@dataclass(frozen=True)
class Searcher:
    """A searcher: `build(space, metric, mode, seed, num_trials, startup_fraction)` returns Ray Tune's Searcher
    (`startup_fraction`: the share of random trials before a model-based searcher models, `startup_trials`).

    imports: modules its builder imports, loaded in a thread while Ray starts (which mostly waits on its
    processes; HyperOpt pulls in scipy.stats, ~0.6 s of the driver's start-up otherwise).
    problem(space): why this searcher cannot search that space, or None.
    planned(space, num_samples, seed): how many trials it runs (by default num_samples, or the space's distinct
    configurations when there are fewer).
    learn(ray_searcher, space, evaluated): teaches the built searcher a trial it did not suggest (a point to
    evaluate, an earlier trial of an extended run; `orchestrator.search.warm_start`); None: it has nothing to learn.
    schedulers: the schedulers it works with (None: every one); another is refused at validation with `pairing_rule`.
    learns_budgets: it learns from each rung's budget, which only HyperBand's BOHB variant reports (the hyperband
    scheduler builds that variant for it).
    runs_given_points: it can run points first and learn trials it did not suggest (`points_to_evaluate`, the warm
    start's portfolio, `orchestrator extend`); False: it runs its own plan only (the grid).
    """

    name: str
    build: Callable[..., Any]
    help: str
    imports: tuple[str, ...] = ()
    problem: Callable[[SearchSpace], Optional[str]] = lambda space: None
    planned: Callable[[SearchSpace, int, int], int] = lambda space, num_samples, seed: distinct_trials(space, num_samples)
    learn: Optional[Callable[..., None]] = None
    schedulers: Optional[frozenset[str]] = None
    pairing_rule: str = ""
    extra: Optional[str] = None  # the pip extra that installs its library, when that is not a core dependency
    learns_budgets: bool = False
    runs_given_points: bool = True

    def missing(self) -> Optional[str]:
        """What to install before this searcher can run, or None."""
        import importlib.util

        absent = sorted({m.split(".")[0] for m in self.imports if importlib.util.find_spec(m.split(".")[0]) is None})
        if self.extra and absent:
            return (f"searcher '{self.name}' needs {', '.join(absent)}, which is not installed; install the extra: "
                    f"pip install -c constraints.txt -e '.[{self.extra}]'")
        return None
