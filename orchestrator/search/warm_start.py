"""Warm starts: configurations that run first (`points_to_evaluate`), and a searcher that has seen earlier trials (`extend`).

`WarmStart` wraps any of our Ray searchers. It serves the given points before the wrapped searcher's own
suggestions, and teaches the wrapped searcher each point's result, and each earlier trial's, through the
searcher record's `learn` (each searcher's module in `orchestrator.search.searchers`): the library's own way to add an evaluated trial it did not suggest (an Optuna
study's `add_trial`, HyperOpt's trial documents, BOHB's `new_result`). Ray's own routes do not serve here:
HyperOpt's `points_to_evaluate` loops forever on a conditional space, Optuna's `add_evaluated_point`
refuses a define-by-run space, and `Tuner.restore` cannot raise `num_samples` (ray-project/ray#42221).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ray.tune.search import Searcher as TuneSearcher

from trainables import constants as C


@dataclass(frozen=True)
class Evaluated:
    """A configuration that already ran: its Tune config, its final value of the metric, its epochs, its curve."""

    config: dict[str, Any]
    value: float
    epochs: int
    curve: tuple = ()  # (epoch, value) of each epoch it ran: what a scheduler's rungs record
    infeasible: bool = False  # its configuration could not run (`value` is then the worst value)


class Wrapper(TuneSearcher):
    """A searcher around another (`inner`): hooks it does not define reach the wrapped one, and its saved
    state is the wrapped one's with the wrapper's own attributes (`OWN`) beside it."""

    OWN: tuple[str, ...] = ()
    inner: TuneSearcher

    def __getattr__(self, name: str):
        # Searcher-specific hooks a scheduler calls (HyperBandForBOHB's on_pause / on_unpause) reach the wrapped one.
        if name.startswith("__") or name in ("inner", "OWN"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def save(self, checkpoint_path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            inner_path = os.path.join(tmp, "inner.pkl")
            self.inner.save(inner_path)
            with open(inner_path, "rb") as f:
                inner = f.read()
        with open(checkpoint_path, "wb") as f:
            pickle.dump({**{k: getattr(self, k) for k in self.OWN}, "inner": inner}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        for k in self.OWN:
            setattr(self, k, state[k])
        with tempfile.TemporaryDirectory() as tmp:
            inner_path = os.path.join(tmp, "inner.pkl")
            with open(inner_path, "wb") as f:
                f.write(state["inner"])
            self.inner.restore(inner_path)


class WarmStart(Wrapper):
    """Serves `points` first, then the wrapped searcher's suggestions; the wrapped searcher learns every
    point's result and, before its first suggestion, every `history` entry."""

    OWN = ("points", "served", "learned")

    def __init__(self, inner: TuneSearcher, space, points: list[dict], history: list[Evaluated],
                 learn: Optional[Callable[..., None]], metric: str, mode: str):
        super().__init__(metric=metric, mode=mode)
        self.inner, self.space, self.learn = inner, space, learn
        self.points = list(points)
        self.served: dict[str, dict] = {}  # trial id -> the point it runs
        self.learned = 0  # evaluated trials the wrapped searcher was taught (earlier trials and points)
        for item in history:
            self._teach(item)

    def _teach(self, item: Evaluated) -> None:
        if self.learn is not None:
            self.learn(self.inner, self.space, item)
        self.learned += 1

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.inner.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str):
        if self.points:
            self.served[trial_id] = self.points.pop(0)
            return dict(self.served[trial_id])
        return self.inner.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.served:
            self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if trial_id not in self.served:
            self.inner.on_trial_complete(trial_id, result=result, error=error)
            return
        config = self.served.pop(trial_id)
        if result and not error and isinstance(result.get(self.metric), (int, float)):
            self._teach(Evaluated(config, float(result[self.metric]), int(result.get("training_iteration", 0)),
                                  infeasible=bool(result.get(C.INFEASIBLE))))
