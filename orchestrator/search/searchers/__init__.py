"""The searchers a search can use, one record each, one module each: its builder, what it learns from a trial it
did not suggest (points run first, an extended run's earlier trials), and the schedulers it pairs with.

A searcher decides *what* to try; it never sees the scheduler. To add one, add a module here with its `Searcher`
record (`base.py`) and list it below (and, if its library needs its own space translation, a module in
`search_spaces/`): validation, `orchestrator list`, the planned-trial count and the parametrized tests pick it up
from there. The modules import Ray and their library inside the builders, so validating a config and reading a
run stay fast.
"""

from __future__ import annotations

from orchestrator.search.searchers import bohb, declarative, hyperopt, optuna
from orchestrator.search.searchers.base import (
    STARTUP_FRACTION,
    Searcher,
    startup_trials,
)

SEARCHERS: dict[str, Searcher] = {r.name: r for r in (hyperopt.RECORD, optuna.RECORD, bohb.RECORD, declarative.RANDOM, declarative.GRID)}
DEFAULT_SEARCHER = "hyperopt"

__all__ = ["SEARCHERS", "DEFAULT_SEARCHER", "STARTUP_FRACTION", "Searcher", "startup_trials"]
