"""The work a search still has, for the progress view's time left: how many trials each rung of successive halving
will still see (`arrivals`), the epochs that makes (`rung_epochs_left`), and how long the workers take to run them
(`makespan`, `spread`). Counted over the whole search rather than per trial, and scheduled over the workers rather
than divided by them: the last promotions of a search run fewer trials than there are workers, and a per-trial
chance overestimates the end of a search whose paused trials the rungs will mostly never resume. Ray-free."""

from __future__ import annotations

import heapq
import math

# How many trials' worth of weight the nominal share 1/rf keeps against a rung's own record.
PRIOR_TRIALS = 10
# The share of its arrivals a rung sends on is read from its more recent half: as the searcher learns, more of
# the new trials are among the best (measured: 37% of the first 240 trials of a 400-trial TPE search passed its
# first rung at x3, 54% of the last 160).
RECENT = 0.5
# A new trial's cost: the families of the more recent MIX_SHARE of the trials (at least MIX_TRIALS), each at the
# mean of its latest FAMILY_TRIALS trials.
MIX_SHARE, MIX_TRIALS, FAMILY_TRIALS = 0.2, 10, 10


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


def arrivals(marks: list[int], reduction_factor: float, reached: list[int], to_start: int, excess: list[int] | None = None,
             moving: list[bool] | None = None) -> list[int]:
    """The trials that will reach each rung of `marks` (the rungs, max_epochs last).

    `reached`: the epochs each started trial has run, oldest trial first (one paused at a rung has reached it;
    an ended one its last), and `moving` whether it runs now; `to_start`: trials not started yet. Every trial
    reaches the first rung. Past a rung
    go the trials already beyond it and a share of those still to arrive there: the share its recent arrivals
    went on (asynchronous promotions send more than 1/rf: a trial among the best of the few there at the time
    goes on), shrunk towards 1/rf while few have arrived; and at least ceil(n / rf), what the promoting ASHA
    promotes once no new trial comes, besides the rung's `excess`: the trials it promoted while it held few that
    are not among its top ceil(n / rf) now (they stay promoted; measured on the quickstart, 9 of 16 trials
    passed its first rung, not 8)."""
    out: list[int] = []
    n = len(reached) + to_start
    moving = moving or [False] * len(reached)
    for i, mark in enumerate(marks):
        # Whether each trial that reached the rung went on: beyond it, or at it and running (promoted).
        here = [e > mark or go for e, go in zip(reached, moving) if e >= mark]
        n = max(n, len(here))
        out.append(n)
        if i + 1 == len(marks):
            break
        recent = here[int(len(here) * (1 - RECENT)):]
        share = max(1 / reduction_factor, (sum(recent) + PRIOR_TRIALS / reduction_factor) / (len(recent) + PRIOR_TRIALS))
        onward = sum(here)  # promoted: running towards the next rung, or beyond it
        n = max(_ceil(n / reduction_factor) + (excess[i] if excess else 0), _ceil(onward + share * (n - len(here))))
    return out


def rung_epochs_left(marks: list[int], reduction_factor: float, reached: list[int], to_start: int, excess: list[int] | None = None,
                     moving: list[bool] | None = None) -> float:
    """The epochs successive halving still runs: each rung's arrivals times the epochs from the rung before,
    less the epochs already run."""
    total, before = 0.0, 0
    for mark, n in zip(marks, arrivals(marks, reduction_factor, reached, to_start, excess, moving)):
        total += n * (mark - before)
        before = mark
    return max(0.0, total - sum(min(e, marks[-1]) for e in reached))


def makespan(marks: list[int], reduction_factor: float, reached: list[int], to_start: int, workers: int,
             per_epoch: list[float], own: list[float | None] | None = None, waiting: list[list[float]] | None = None,
             started: list[float] | None = None, into: list[float] | None = None, excess: list[int] | None = None,
             moving: list[bool] | None = None) -> float:
    """How long `workers` take to run what successive halving has left, in seconds.

    `per_epoch`: the seconds of an epoch between each rung and the one before (promoted trials are the better
    ones, often of other families than the trials the first rung stops); `own`: each started trial's own
    seconds per epoch (None: unknown), for the trials under way; `waiting`: for each rung after the first, the
    own seconds per epoch of the trials paused at the rung before, the best first (the next promotions are
    theirs); `into`: for each started trial, the seconds since its last epoch ended (a trial under way is that far
    into its next one); `started`: for each trial started that has reported no epoch yet (counted in `to_start`),
    the seconds since it started (it holds a worker, and its first epoch is partly run); `excess`: for each rung,
    the trials promoted from it that are not among its top ceil(n / rf) now (`arrivals`); `moving`: for each
    started trial, whether it runs now (one at a rung that runs is under way to the next). The trials under way
    run on (they hold a worker); then a free worker takes a promotion (the highest rung first) before a new
    trial, as the promoting ASHA does. The j-th promotion past a rung waits for
    the j-th trial to reach it (no earlier, and no later: waiting for the share of the rung's arrivals that sends j
    on was measured worse, 249 of 379 replayed estimates within 30% against 326, since the best trials tend to
    come early), so the last promotions wait for the rungs below them and run on fewer workers than there are."""
    n = arrivals(marks, reduction_factor, reached, to_start, excess, moving)
    starts = [0, *marks[:-1]]
    own = own or [None] * len(reached)
    completed = [sum(e >= m for e in reached) for m in marks]
    into, moving = into or [0.0] * len(reached), moving or [False] * len(reached)
    under = [sorted((m - e) * (o or per_epoch[i]) - min(t, o or per_epoch[i])
                    for e, o, t, go in zip(reached, own, into, moving) if s < e < m or go and 0 < s == e)
             for i, (s, m) in enumerate(zip(starts, marks))]
    under[0] = sorted(under[0] + [max(0.0, marks[0] * per_epoch[0] - elapsed) for elapsed in (started or [])])
    todo = [max(0, n[i] - completed[i] - len(under[i])) for i in range(len(marks))]
    ends: list[tuple[float, int]] = []  # (when, rung) a trial under way reaches the rung
    for i in reversed(range(len(marks))):
        for left in under[i]:
            if len(ends) < workers:
                heapq.heappush(ends, (left, i))
            else:
                todo[i] += 1  # more under way than workers (a resume): it waits for one
    begun = [n[i] - todo[i] for i in range(len(marks))]
    queued = [list(w) for w in (waiting or [])] + [[] for _ in range(len(marks) - len(waiting or []))]

    def ready(i: int) -> bool:
        if todo[i] <= 0:
            return False
        return i == 0 or completed[i - 1] > begun[i]

    free, now, last = [0.0] * (workers - len(ends)), 0.0, max((t for t, _ in ends), default=0.0)
    while True:
        while free and (pick := next((i for i in reversed(range(len(marks))) if ready(i)), None)) is not None:
            start = max(heapq.heappop(free), now)
            todo[pick] -= 1
            begun[pick] += 1
            cost = queued[pick].pop(0) if queued[pick] else per_epoch[pick]
            heapq.heappush(ends, (start + (marks[pick] - starts[pick]) * cost, pick))
        if not ends:
            return last
        now, rung = heapq.heappop(ends)
        last = max(last, now)
        completed[rung] += 1
        heapq.heappush(free, now)


def segment_seconds(marks: list[int], epochs: list[list[float]]) -> list[float]:
    """The seconds of an epoch between each rung and the one before, from the epochs run so far (`epochs`: each
    started trial's epoch times, oldest trial first), each from the more recent half of the trials that ran
    there (at least 10; as the searcher learns, it draws more of the larger models that do well): the first
    epochs for the first rung; where no trial has passed a rung yet, the epochs of the trials that reached it
    (the ones a promotion picks from)."""
    starts = [0, *marks[:-1]]
    out: list[float] = []
    for i in range(len(marks)):
        ran = [t[starts[i]:marks[i]] for t in epochs if len(t) > starts[i]]
        if not ran and i > 0:
            ran = [t for t in epochs if len(t) >= starts[i]]
        seen = [x for t in ran[-max(10, len(ran) // 2):] for x in t]
        out.append(sum(seen) / len(seen) if seen else (out[-1] if out else 1.0))
    return out


def new_trial_seconds(epochs: list[list[float]], families: list[str | None], upto: int) -> float:
    """The seconds of a new trial's epochs up to `upto`, as the searcher draws now: the recent trials' families
    (the more recent fifth of the trials, at least 10), each at the mean of its family's latest 10 trials. A
    searcher that has learned draws mostly one family, and its cost is that family's: in a 400-trial TPE
    forecast, 31 of the last 50 trials were GRUs and a first epoch cost 0.3 s, against 0.1-0.2 s over the trials
    before (the recent half of the trials counted those, and fell a third short for a minute)."""
    by_family: dict[str | None, list[list[float]]] = {}
    for run, family in zip(epochs, families):
        if run:
            by_family.setdefault(family, []).append(run[:upto])
    mean = {}
    for family, runs in by_family.items():
        seen = [x for run in runs[-FAMILY_TRIALS:] for x in run]
        mean[family] = sum(seen) / len(seen)
    recent = [family for run, family in zip(epochs, families) if run]
    recent = recent[-max(MIX_TRIALS, int(len(recent) * MIX_SHARE)):]
    return sum(mean[family] for family in recent) / len(recent) if recent else 1.0


def spread(jobs: list[float], workers: int) -> float:
    """How long `workers` take to run independent jobs of these lengths (in epochs), the longest first: the
    work of a scheduler without rungs, whose last trials may be fewer than the workers."""
    free = [0.0] * max(1, workers)
    for job in sorted(jobs, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + job)
    return max(free)
