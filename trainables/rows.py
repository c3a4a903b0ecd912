"""What a trial's result rows mean, the one rule every reader applies: which metric values a search can compare,
and when an epoch began. Torch-free; used by the reading layer, the schedulers, `extend` and the benchmarks."""

from __future__ import annotations

import math
from typing import Any, Optional

from trainables.constants import DIVERGED, DIVERGED_PENALTY


def reported_value(row: dict[str, Any], metric: str) -> Optional[float]:
    """The number a result reported for `metric` (finite: a diverged epoch reports DIVERGED_PENALTY in place of
    NaN or inf, which is what a searcher was told), or None when it has none."""
    value = row.get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def usable_value(row: dict[str, Any], metric: str) -> Optional[float]:
    """A result's value of `metric` when it can be compared with others: reported, finite, from an epoch that did
    not diverge (nor carries the divergence penalty); None otherwise. The rule for leaderboards, reports, rungs,
    checkpoints and benchmarks alike."""
    value = reported_value(row, metric)
    if value is None or row.get(DIVERGED) or abs(value) >= DIVERGED_PENALTY:
        return None
    return value


def epoch_began(row: dict[str, Any], ended: Optional[float] = None) -> Optional[float]:
    """When the epoch of a result began: its end (`ended`, else the result's `timestamp`) less the epoch's duration
    (`time_this_iter_s`). For a trial's first result, when the trial started training; None without a time."""
    end = row.get("timestamp") if ended is None else ended
    if not isinstance(end, (int, float)):
        return None
    return float(end) - float(row.get("time_this_iter_s") or 0.0)
