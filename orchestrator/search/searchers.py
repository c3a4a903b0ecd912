"""The searchers a search can use, one record each: builder, imports to load ahead, help, what it needs.

A searcher decides *what* to try; it never sees the scheduler. To add one, add a `Searcher` record to
SEARCHERS (and, if it needs its own space translation, a module in `search_spaces/`): validation,
`orchestrator list`, the planned-trial count and the parametrized tests pick it up from there. Ray and the
search libraries are imported inside the builders, so validating a config and reading a run stay fast.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from search_spaces import SearchSpace

# Random trials before TPE (HyperOpt's or Optuna's) models the results, as a fraction of the search's trials;
# `python -m benchmarks.quality --startup-fraction F` measures other values against random search.
STARTUP_FRACTION = 1 / 3


def hyperopt_startup_trials(num_samples: int) -> int:
    """Random trials before TPE starts modelling: STARTUP_FRACTION of the trials, at least 3, at most 20
    (hyperopt's default). Ray's default of 20 would leave a 16-trial search entirely random."""
    return max(3, min(20, int(num_samples * STARTUP_FRACTION)))


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


def _optuna_class():
    """Ray's OptunaSearch over our define-by-run space; defined lazily to import Ray late."""
    from ray.tune.search.optuna import OptunaSearch

    class DefineByRunSearch(OptunaSearch):
        """OptunaSearch whose config is exactly what the define-by-run function returns: Ray's own merges in every
        value the function asked for by its Optuna name (`lstm/hidden_size`), which would add stray keys."""

        def _suggest_from_define_by_run_func(self, func, ot_trial):
            return func(ot_trial)

    return DefineByRunSearch


def _optuna(space: SearchSpace, metric: str, mode: str, seed: int, num_samples: int):
    import functools

    import optuna

    from search_spaces.optuna_space import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study created
    # `multivariate` and `group` are marked experimental (the interface may change); their use is deliberate.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Multivariate TPE models the hyperparameters jointly; `group` splits the space by which parameters a trial
    # has, so each family's sub-space is modelled on that family's trials only (the conditional space).
    sampler = optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, n_startup_trials=hyperopt_startup_trials(num_samples), constant_liar=True
    )
    return _optuna_class()(space=functools.partial(suggest, space=space), metric=metric, mode=mode, sampler=sampler)


def _bohb_class():
    """Ray's TuneBOHB over our ConfigSpace translation, handing Tune configs back; defined lazily to import Ray late."""
    from ray.tune.search.bohb import TuneBOHB

    from search_spaces.configspace_space import from_configspace

    class ConditionalBOHB(TuneBOHB):
        """TuneBOHB whose suggestions are Tune configs of our space (its own are the ConfigSpace's flat values)."""

        def __init__(self, space: SearchSpace, cs, **kwargs):
            super().__init__(space=cs, **kwargs)
            self.declarative = space

        def suggest(self, trial_id: str):
            values = super().suggest(trial_id)
            return from_configspace(self.declarative, values) if isinstance(values, dict) else values

    return ConditionalBOHB


def _bohb(space: SearchSpace, metric: str, mode: str, seed: int, num_samples: int):
    from search_spaces.configspace_space import to_configspace

    return _bohb_class()(space, to_configspace(space, seed), metric=metric, mode=mode, seed=seed)


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
    learn(ray_searcher, space, evaluated): teaches the built searcher a trial it did not suggest (a point to
    evaluate, an earlier trial of an extended run; `orchestrator.search.warm_start`); None: it has nothing to learn.
    schedulers: the schedulers it works with (None: every one); another is refused at validation with `pairing_rule`.
    """

    name: str
    build: Callable[..., Any]
    help: str
    imports: tuple[str, ...] = ()
    problem: Callable[[SearchSpace], Optional[str]] = lambda space: None
    planned: Callable[[SearchSpace, int, int], int] = lambda space, num_samples, seed: num_samples
    learn: Optional[Callable[..., None]] = None
    schedulers: Optional[frozenset[str]] = None
    pairing_rule: str = ""
    extra: Optional[str] = None  # the pip extra that installs its library, when that is not a core dependency

    def missing(self) -> Optional[str]:
        """What to install before this searcher can run, or None."""
        import importlib.util

        absent = sorted({m.split(".")[0] for m in self.imports if importlib.util.find_spec(m.split(".")[0]) is None})
        if self.extra and absent:
            return (f"searcher '{self.name}' needs {', '.join(absent)}, which is not installed; install the extra: "
                    f"pip install -c constraints.txt -e '.[{self.extra}]'")
        return None


def _learner(name: str) -> Callable[..., None]:
    """A `learn` function of `orchestrator.search.warm_start`, imported when first called (it imports Ray)."""

    def learn(searcher, space, evaluated) -> None:
        from orchestrator.search import warm_start

        getattr(warm_start, name)(searcher, space, evaluated)

    return learn


SEARCHERS: dict[str, Searcher] = {
    "hyperopt": Searcher("hyperopt", _hyperopt, "Tree-structured Parzen Estimator (HyperOpt), conditional on the model family (default)",
                         imports=("hyperopt",), learn=_learner("learn_hyperopt")),
    "optuna": Searcher("optuna", _optuna, "Optuna's TPE, multivariate and grouped by model family (define-by-run space)",
                       imports=("optuna",), learn=_learner("learn_optuna")),
    "bohb": Searcher("bohb", _bohb, "BOHB: a kernel-density model fitted per HyperBand budget",
                     imports=("ConfigSpace", "hpbandster.optimizers.config_generators.bohb"), learn=_learner("learn_bohb"),
                     schedulers=frozenset({"hyperband"}), extra="bohb",
                     pairing_rule="BOHB learns from the budgets of its own HyperBand, which reports them"),
    "random": Searcher("random", _random, "uniform random sampling of the space"),
    "grid": Searcher("grid", _grid, "every combination of `grid` values (other domains sampled once per point)",
                     problem=_grid_problem, planned=_grid_trials),
}
DEFAULT_SEARCHER = "hyperopt"
