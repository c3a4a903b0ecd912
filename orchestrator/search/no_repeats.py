"""No configuration trained twice: a searcher's repeated suggestion is answered with the earlier trial's result.

Training is seeded by the configuration, so a second trial of the same configuration would only repeat the first
(a space of 4 distinct configurations with `num_samples: 6` trained two of them twice). `NoRepeats` wraps the
search's searcher: when it suggests a configuration that already ran (or is running), the searcher is taught the
earlier trial's result under that suggestion (an error while the earlier one still runs, which every library
skips) and asked again. A searcher that keeps repeating itself on a finite space gets an unseen configuration of
the space (seeded); when the space has none left, the search ends: each configuration ran once.

The same holds for a model that cannot be built: whether it builds depends on its family and model
hyperparameters only, so once a trial of them ended `infeasible`, a suggestion with the same model (whatever its
training values) is answered with that result and never started again. A univariate model such as TPE cannot
learn that only some combinations fail (`width % heads`); this memory makes each refused combination cost one trial.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np
from ray.tune.search import Searcher as TuneSearcher

from orchestrator.search.warm_start import Wrapper
from trainables import constants as C
from trainables.trial import TrialConfig

ASKS = 20  # suggestions a searcher gets to propose something new before one is picked for it


def config_key(config: dict[str, Any]) -> str:
    """A configuration's identity: its Tune config, with every value as JSON writes it."""
    return json.dumps(config, sort_keys=True, default=str)


def model_key(config: dict[str, Any]) -> str:
    """What decides whether a configuration's model can be built: its family and model hyperparameters."""
    trial = TrialConfig.from_tune(config)
    return json.dumps([trial.family, trial.model], sort_keys=True, default=str)


class NoRepeats(Wrapper):
    """Wraps the search's searcher (see the module): every trial it starts is a configuration not run before."""

    OWN = ("seen", "keys", "results", "aliases", "picked", "rng", "refused")

    def __init__(self, inner: TuneSearcher, space, seed: int, metric: str, mode: str):
        super().__init__(metric=metric, mode=mode)
        self.inner, self.space = inner, space
        self.seen: dict[str, str] = {}  # configuration -> the trial that runs it
        self.keys: dict[str, str] = {}  # trial id -> its configuration
        self.results: dict[str, dict] = {}  # configuration -> its trial's result when it ended (or first paused)
        self.aliases: dict[str, str] = {}  # trial id -> the id the wrapped searcher suggested it under
        self.picked: set[str] = set()  # trials this wrapper picked (the wrapped searcher never heard of them)
        self.refused: dict[str, dict] = {}  # model (family and model values) -> the result of its infeasible trial
        self.rng = np.random.default_rng(seed)
        self._all: Optional[list] = None

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.inner.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str):
        for attempt in range(ASKS):
            asked = trial_id if attempt == 0 else f"{trial_id}~{attempt}"
            config = self.inner.suggest(asked)
            if not isinstance(config, dict):  # None (no slot now) or FINISHED
                return config
            key, refused = config_key(config), self.refused.get(model_key(config))
            if key not in self.seen and refused is None:
                return self._start(trial_id, key, config, asked)
            # Taught what the earlier trial gave (nothing yet while it runs), under the name it asked with.
            earlier = refused or self.results.get(key)
            self.inner.on_trial_complete(asked, result=earlier, error=earlier is None)
        everything = self._configurations()
        if everything is None:  # a continuous space whose searcher keeps repeating a point: a rare repeat beats a stall
            self.picked.add(trial_id)
            return config
        unseen = [c for c in everything if config_key(c) not in self.seen and model_key(c) not in self.refused]
        if not unseen:
            return TuneSearcher.FINISHED  # every configuration of the space ran once
        config = unseen[int(self.rng.integers(len(unseen)))]
        self.picked.add(trial_id)
        return self._start(trial_id, config_key(config), dict(config), None)

    def _start(self, trial_id: str, key: str, config: dict, asked: Optional[str]) -> dict:
        self.seen[key], self.keys[trial_id] = trial_id, key
        if asked is not None and asked != trial_id:
            self.aliases[trial_id] = asked
        return config

    def _configurations(self) -> Optional[list]:
        if self._all is None:
            self._all = self.space.configurations() or []
        return self._all or None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.picked:
            self.inner.on_trial_result(self.aliases.get(trial_id, trial_id), result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        key = self.keys.get(trial_id)
        if key is not None and result and not error:
            self.results.setdefault(key, result)
            if result.get(C.INFEASIBLE):
                self.refused[model_key(json.loads(key))] = result
        if trial_id not in self.picked:
            self.inner.on_trial_complete(self.aliases.pop(trial_id, trial_id), result=result, error=error)
