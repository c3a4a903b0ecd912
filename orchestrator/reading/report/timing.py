"""Wall time in a run: when each result was reported, each trial's sessions, and the report's time axis.

A session is one stretch of a trial running without interruption: it starts at the trial's first result
and again after each restore. The time axis cuts out pauses (the experiment stopped, then resumed), so
that an hour with nothing running does not squeeze the rest of the run into a corner of the figure.
"""

from __future__ import annotations

import math

from trainables.rows import epoch_began

CLOCK_S = 1.0  # Tune's own timestamps are whole seconds: two times closer than this cannot be ordered
PAUSE_S = 60.0  # nothing running for this long means the experiment itself was stopped (then resumed)


def timed_rows(rows: list[dict]) -> list[tuple[float, int, dict]]:
    """(wall time, session, row) of each result; a session starts at a trial's first result and after each restore.

    The trainable stamps each result with the exact time its epoch ended. Tune's own `timestamp` (runs
    written before that) is whole seconds: it only bounds a result to its second, and within that second
    the trial's own clock (`time_since_restore`, counted from the start of its session) places it.
    """
    out: list[tuple[float, int, dict]] = []
    start, session, last_iter = 0.0, -1, math.inf
    for row in rows:
        ts = row.get("timestamp")
        if not isinstance(ts, (int, float)):
            continue
        since = float(row.get("time_since_restore", row.get("time_total_s")) or 0.0)
        iteration = row.get("iterations_since_restore", row.get("training_iteration", 0))
        if session < 0 or iteration <= last_iter:  # the first result, or the counter restarted: a restore
            session, start = session + 1, ts + 0.5 - since
        last_iter = iteration
        exact = isinstance(ts, float) and not ts.is_integer()
        out.append((ts if exact else min(max(start + since, ts), ts + 1.0), session, row))
    return out


def sessions(rows: list[dict]) -> list[tuple[float, float]]:
    """(start, end) wall times of each session of a trial: from its first result minus that epoch's time, to its last result."""
    spans: dict[int, list[float]] = {}
    for t, s, row in timed_rows(rows):
        if s not in spans:
            spans[s] = [epoch_began(row, ended=t), t]
        spans[s][1] = t
    return [(a, b) for a, b in spans.values()]


class TimeAxis:
    """Wall time -> seconds since the first trial started, with pauses (nothing running for PAUSE_S) cut out."""

    def __init__(self, spans: list[tuple[float, float]]):
        spans = sorted(spans)
        self.origin = spans[0][0] if spans else 0.0
        self.pauses: list[tuple[float, float]] = []  # wall (start, end) of each stretch with nothing running
        reach = self.origin
        for start, end in spans:
            if start - reach > PAUSE_S:
                self.pauses.append((reach, start))
            reach = max(reach, end)

    def __call__(self, t: float) -> float:
        cut = sum(min(end, max(t, start)) - start for start, end in self.pauses)
        return t - self.origin - cut

    def marks(self) -> list[dict[str, float]]:
        """Where each cut-out pause sits on the axis, and how long it was."""
        return [{"at": self(end), "hidden_s": end - start} for start, end in self.pauses]


def pause_notes(marks: list[dict[str, float]]) -> list[str]:
    """The caveat under a figure on the time axis when pauses were cut out of it."""
    if not marks:
        return []
    hidden = sum(p["hidden_s"] for p in marks) / 60
    return [f"The experiment was interrupted and resumed: {hidden:.0f} min with nothing running are cut out of the time axis (dashed line)."]
