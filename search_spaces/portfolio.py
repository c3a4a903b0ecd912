"""A warm start learned on the bundled tasks: a few configurations that did well across them, run first.

A search's first trials are draws from the space, and with a few dozen trials most of the budget goes to
configurations no better than average. A portfolio (auto-sklearn 2.0's and FLAML's zero-shot warm start)
puts configurations that did well on other tasks first; the searcher learns from them like from its own
trials. `portfolio.json` holds candidates, each a flat point (family, hyperparameters, training keys) and its
score on every bundled task whose space has its family: the share of that task's random configurations
that end better within 8 epochs (0 = better than all of them). `benchmarks/portfolio.py` measures them and
writes the file, and judges the portfolio leave-one-task-out.

For a space, `portfolio_points` chooses greedily among the candidates of the space's built-in families: each
pick lowers most the mean over the tasks of the portfolio's best score there. Each point is moved into the
space: a key the point lacks takes the family's and the training defaults, each value moves to the nearest
one its domain gives, a key the space lacks is dropped. A user's own model (`model: file.py:Class`) is
never given a point: the candidates know nothing of its hyperparameters.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from typing import Any, Iterable

from search_spaces.domains import Choice, Domain, QUniform, RandInt
from search_spaces.points import within
from search_spaces.space import SPACES_DIR
from trainables.trial import FAMILY

PORTFOLIO_FILE = SPACES_DIR / "portfolio.json"
SIZE = 4  # points a search runs first, at most
SHARE = 4  # ... and at most one in this many of its trials


def snap(domain: Any, value: Any) -> Any:
    """`value` moved into `domain`: itself when the domain may give it, else the nearest value it may give
    (a numeric choice's closest option, a non-numeric choice's first, a range's clipped and stepped value)."""
    if not isinstance(domain, Domain):
        return domain  # a constant of the space
    if within(domain, value):
        return value
    if isinstance(domain, Choice):
        numbers = [o for o in domain.options if isinstance(o, (int, float)) and not isinstance(o, bool)]
        if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
            return min(numbers, key=lambda o: abs(o - value))
        return domain.options[0]
    if isinstance(domain, RandInt):
        return int(min(max(value, domain.low), domain.high - 1))
    if isinstance(domain, QUniform):
        return domain.quantize(value)
    return float(min(max(value, domain.low), domain.high))


def into_space(point: dict[str, Any], space) -> dict[str, Any] | None:
    """`point` (flat) moved into `space` (see the module's docstring); None when the space has no built-in family
    of that name."""
    from trainables.models import MODELS
    from trainables.trial import TrainConfig

    family = point[FAMILY]
    if family not in space.families or family in space.models or family not in MODELS:
        return None
    params = MODELS[family].params()
    train = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return {FAMILY: family,
            **{k: snap(d, point[k] if k in point else params[k].default) for k, d in space.families[family].items()},
            **{k: snap(d, point[k] if k in point else train[k]) for k, d in space.train.items()}}


def loss(scores: list[dict[str, float]], picks: Iterable[int], tasks: list[str]) -> float:
    """A portfolio's loss: the mean over `tasks` of its best score there (1 where no pick has one)."""
    picks = list(picks)
    return sum(min((scores[j][t] for j in picks if t in scores[j]), default=1.0) for t in tasks) / len(tasks)


def select(scores: list[dict[str, float]], tasks: Iterable[str], usable: Iterable[int], size: int) -> list[int]:
    """Greedy portfolio: indices into `scores` (each candidate's score per task, lower better) among `usable`.
    Each pick lowers the portfolio's `loss` most; ties (a portfolio already at 0 everywhere) go to the
    candidate best on its own."""
    tasks, usable = list(tasks), list(usable)
    chosen: list[int] = []
    for _ in range(min(size, len(usable))):
        chosen.append(min((i for i in usable if i not in chosen),
                          key=lambda i: (loss(scores, [*chosen, i], tasks), loss(scores, [i], tasks), i)))
    return chosen


@lru_cache(maxsize=1)
def load() -> tuple[dict[str, Any], ...]:
    """The shipped candidates: ({"point", "scores", "source"}, ...)."""
    return tuple(json.loads(PORTFOLIO_FILE.read_text())["candidates"])


def portfolio_points(space, size: int = SIZE) -> list[dict[str, Any]]:
    """Up to `size` distinct flat points of the shipped portfolio for `space`, in the order they were picked (in a
    narrow space two candidates can move to the same point: the later one is passed over)."""
    candidates = load()
    tasks = sorted({t for c in candidates for t in c["scores"]})
    moved = [into_space(c["point"], space) for c in candidates]
    usable = [i for i, point in enumerate(moved) if point is not None]
    points: list[dict[str, Any]] = []
    for i in select([c["scores"] for c in candidates], tasks, usable, len(usable)):
        if len(points) == size:
            break
        if moved[i] not in points:
            points.append(moved[i])
    return points


def choices() -> dict[str, str]:
    """The values of the experiment's `warm_start` key, each in one line (for `orchestrator list`)."""
    return {"portfolio": f"up to {SIZE} configurations that did well on the bundled tasks run first, at most 1 in {SHARE} of the trials "
                         f"(default; {len(load())} measured candidates, search_spaces/portfolio.json)",
            "none": "the searcher's own suggestions from the first trial"}


def warm_start_points(space, num_samples: int, given: int) -> list[dict[str, Any]]:
    """The portfolio's flat points a search of `num_samples` trials runs after its `given` points of its own (up to
    `warm_start_size`); whether the experiment runs a warm start at all is its config's and its searcher's call."""
    size = warm_start_size(num_samples, given)
    return portfolio_points(space, size) if size else []


def warm_start_size(num_samples: int, given: int) -> int:
    """How many portfolio points a search of `num_samples` trials runs after the `given` points of its own: at
    most SIZE, and at most one in SHARE of the trials, so a short search stays mostly the searcher's."""
    return max(0, min(SIZE, (num_samples - given) // SHARE))
