"""The BOHB searcher: Ray's TuneBOHB over the space's ConfigSpace translation (`search_spaces/configspace_space.py`),
paired with its own HyperBand, and how it learns a trial it did not suggest. HpBandSter and Ray load when one is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.search.searchers.base import STARTUP_FRACTION, Searcher
from search_spaces import SearchSpace

if TYPE_CHECKING:
    from orchestrator.search.warm_start import Evaluated


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


def build(space: SearchSpace, metric: str, mode: str, seed: int, num_samples: int, startup_fraction: float = STARTUP_FRACTION):
    from search_spaces.configspace_space import to_configspace

    return _bohb_class()(space, to_configspace(space, seed), metric=metric, mode=mode, seed=seed)


def learn(searcher, space, item: Evaluated) -> None:
    """Gives BOHB's model a finished trial's result at the budget (epochs) it reached."""
    from ray.tune.search.bohb.bohb_search import _BOHBJobWrapper

    from search_spaces.configspace_space import configspace_values

    searcher.bohber.new_result(_BOHBJobWrapper(searcher._metric_op * item.value, float(item.epochs), configspace_values(space, item.config)))


RECORD = Searcher("bohb", build, "BOHB: a kernel-density model fitted per HyperBand budget",
                  imports=("ConfigSpace", "hpbandster.optimizers.config_generators.bohb"), learn=learn,
                  schedulers=frozenset({"hyperband"}), extra="bohb", learns_budgets=True,
                  pairing_rule="BOHB learns from the budgets of its own HyperBand, which reports them")
