"""Would a warm start learned on other tasks make the search reach its target sooner? A portfolio, judged leave-one-task-out.

    python -m benchmarks.portfolio --cross        # train the candidates on every other task (~2 min), then select
    python -m benchmarks.portfolio                # select again from the saved cross results (seconds)
    python -m benchmarks.portfolio --ship         # ... and write the product's search_spaces/portfolio.json

The bound (`benchmarks/bound.py`) shows that no scheduler fed uniform draws reaches the quality study's target
within a third of the budget: the first trials must be better than uniform draws. This measures one way to
get them that does not look at the task being searched: a portfolio (auto-sklearn 2.0's and FLAML's zero-shot
warm start). Candidates are each bundled task's best configurations from its pool (`pool-<task>.json`); each
is moved into every other task's space (keys it lacks take the family's and the training defaults) and
trained there for `--max-epochs` epochs through the orchestrator (`--cross`, saved to `portfolio-cross.json`).
A candidate's score on a task is the share of that task's pool that ends better than it (0: better than every
random configuration). For each held-out task, a portfolio of `--size` is chosen greedily from the other
tasks' candidates, scored on the other tasks only: each pick lowers most the mean over those tasks of the
portfolio's best score. The held-out task contributes only its space (which families it has), never a
result. Written: `portfolio-loto-<task>.json` (the flat points, for `benchmarks.quality --points`), and
`portfolio.md`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.study import RESULTS_DIR, TASKS
from trainables.trial import FAMILY


def flat(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's Tune config as a flat point (family, the family's hyperparameters, the training keys)."""
    return {FAMILY: config["arch"]["family"], **config["arch"]["model"], **{k: v for k, v in config.items() if k != "arch"}}


def into_space(point: dict[str, Any], space_name: str) -> dict[str, Any] | None:
    """`point` moved into a bundled space (`search_spaces.portfolio.into_space`)."""
    from search_spaces import load_space
    from search_spaces.portfolio import into_space as move

    return move(point, load_space(space_name))


def best_of(curve: list[Any]) -> float:
    """A curve's best (lowest) finite value; infinity when it has none."""
    values = [v for v in curve if isinstance(v, (int, float)) and math.isfinite(v)]
    return min(values, default=math.inf)


def candidates(pools: dict[str, list[dict[str, Any]]], top: int) -> list[dict[str, Any]]:
    """Each task's `top` best pool configurations, and its best configurations of each family until every family
    has 2: [{"source", "point", "own_curve"}]."""
    out = []
    for task, pool in pools.items():
        ranked = sorted(pool, key=lambda p: best_of(p["curve"]))
        chosen = ranked[:top]
        for family in {flat(p["config"])[FAMILY] for p in pool}:
            have = sum(flat(p["config"])[FAMILY] == family for p in chosen)
            chosen += [p for p in ranked if flat(p["config"])[FAMILY] == family and p not in chosen][: max(0, 2 - have)]
        out += [{"source": task, "point": flat(p["config"]), "own_curve": p["curve"]} for p in chosen]
    return out


def train_points(task: str, points: list[dict[str, Any]], max_epochs: int) -> list[list[float]]:
    """Each point trained for `max_epochs` on `task` through the orchestrator (run first by the random searcher),
    one at a time: its validation value after each epoch."""
    from benchmarks.bound import random_study
    from benchmarks.study import experiment, row_value, run_search
    from orchestrator.reading import results as R

    with tempfile.TemporaryDirectory(prefix="portfolio-") as storage:
        raw = {**experiment("random:fifo", 0, random_study(task, len(points), max_epochs), storage), "points_to_evaluate": points}
        run_search(raw, Path(storage), budget=len(points) * max_epochs)
        trials = R.load_trials(Path(storage) / raw["name"])
    if len(trials) != len(points):
        raise RuntimeError(f"{task}: {len(points)} points given, {len(trials)} trials ran")
    metric = TASKS[task][2]
    return [[row_value(r, metric) for r in t.rows] for t in trials]


def cross(pools: dict[str, list[dict[str, Any]]], args) -> dict[str, Any]:
    """Every candidate trained on every other task whose space has its family."""
    from orchestrator.running import cluster

    cluster.start_ray(None)
    cands = candidates(pools, args.top)
    began = time.perf_counter()
    for task in pools:
        todo = [(i, into_space(c["point"], TASKS[task][1])) for i, c in enumerate(cands) if c["source"] != task]
        todo = [(i, p) for i, p in todo if p is not None]
        curves = train_points(task, [p for _, p in todo], args.max_epochs)
        for (i, p), curve in zip(todo, curves):
            cands[i].setdefault("on", {})[task] = {"point": p, "curve": curve}
        print(f"{task}: {len(todo)} candidates trained", flush=True)
    for c in cands:
        c.setdefault("on", {})[c["source"]] = {"point": into_space(c["point"], TASKS[c["source"]][1]), "curve": c.pop("own_curve")}
    return {"max_epochs": args.max_epochs, "top": args.top, "seconds": round(time.perf_counter() - began, 1),
            "candidates": cands}


def score(value: float, pool_bests: list[float]) -> float:
    """The share of a task's pool that ends better than `value` (0: better than every random configuration)."""
    return sum(b < value for b in pool_bests) / len(pool_bests)


def scores_of(cands: list[dict[str, Any]], pool_bests: dict[str, list[float]]) -> list[dict[str, float]]:
    """Each candidate's score on every task it was trained on."""
    return [{t: score(best_of(on["curve"]), pool_bests[t]) for t, on in c["on"].items()} for c in cands]


def select(cands: list[dict[str, Any]], tasks: list[str], families: set[str], size: int,
           pool_bests: dict[str, list[float]]) -> list[int]:
    """The product's greedy choice (`search_spaces.portfolio.select`) among the candidates of `tasks` only, of a
    family in `families`, scored on `tasks` only."""
    from search_spaces.portfolio import select as greedy

    scores = [{t: s for t, s in row.items() if t in tasks} for row in scores_of(cands, pool_bests)]
    usable = [i for i, c in enumerate(cands) if c["source"] in tasks and c["point"][FAMILY] in families]
    return greedy(scores, tasks, usable, size)


def ship(cands: list[dict[str, Any]], pool_bests: dict[str, list[float]], max_epochs: int) -> dict[str, Any]:
    """The product's portfolio file: every candidate, its point and its score on each task (all three tasks now)."""
    return {"about": "written by `python -m benchmarks.portfolio --ship`: each candidate's score on a bundled task is the share "
                     f"of that task's random configurations that end better within {max_epochs} epochs",
            "candidates": [{"source": c["source"], "point": c["point"], "scores": {t: round(s, 4) for t, s in row.items()}}
                           for c, row in zip(cands, scores_of(cands, pool_bests))]}


def pools_in(folder: Path, max_epochs: int) -> dict[str, list[dict[str, Any]]]:
    """Every task's pool of random configurations (`pool-<task>.json`, saved by `benchmarks.bound`)."""
    from benchmarks.bound import read_pool

    return {t: read_pool(str(folder / f"pool-{t}.json"), t, max_epochs, "pool") for t in TASKS}


def measurements(folder: Path, max_epochs: int) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """(the candidates with their curves on each task, from `portfolio-cross.json`; each task's pool's best values)."""
    cands = json.loads((folder / "portfolio-cross.json").read_text())["candidates"]
    for c in cands:  # JSON has no infinity
        for on in c["on"].values():
            on["curve"] = [math.inf if v is None else v for v in on["curve"]]
    return cands, {t: [best_of(p["curve"]) for p in pool] for t, pool in pools_in(folder, max_epochs).items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.portfolio", description=__doc__.split("\n")[0])
    p.add_argument("--cross", action="store_true", help="train the candidates on every other task first (else: read portfolio-cross.json)")
    p.add_argument("--top", type=int, default=8, help="each task's best pool configurations taken as candidates")
    p.add_argument("--size", type=int, default=4, help="configurations in a portfolio")
    p.add_argument("--max-epochs", type=int, default=8)
    p.add_argument("--ship", action="store_true", help="also write the product's portfolio file (search_spaces/portfolio.json) from every task")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    out = Path(args.out)
    from search_spaces import load_space
    from search_spaces.portfolio import loss

    if args.cross:
        (out / "portfolio-cross.json").write_text(json.dumps(cross(pools_in(out, args.max_epochs), args), default=str) + "\n")
    cands, pool_bests = measurements(out, args.max_epochs)
    scores = scores_of(cands, pool_bests)
    lines = [f"Portfolios chosen leave-one-task-out: {args.size} configurations from the other tasks' candidates "
             f"({len(cands)} in all, each task's {args.top} best pool configurations and 2 of each family), scored on the "
             "other tasks only. Score: the share of a task's pool that ends better within "
             f"{args.max_epochs} epochs (0 = better than every random configuration).", "",
             "| held-out task | portfolio (source task: family) | score on the training tasks | score on the held-out task, each | best |",
             "|---|---|---|---|---|"]
    for held in TASKS:
        train_tasks = [t for t in TASKS if t != held]
        families = set(load_space(TASKS[held][1]).families)
        chosen = select(cands, train_tasks, families, args.size, pool_bests)
        on_train = loss(scores, chosen, train_tasks)
        held_scores = [scores[i].get(held, math.nan) for i in chosen]
        points = [into_space(cands[i]["point"], TASKS[held][1]) for i in chosen]
        (out / f"portfolio-loto-{held}.json").write_text(json.dumps(points, indent=1) + "\n")
        lines.append(f"| {held} | {', '.join(cands[i]['source'] + ': ' + cands[i]['point'][FAMILY] for i in chosen)} | {on_train:.3f} | "
                     f"{', '.join(f'{s:.3f}' for s in held_scores)} | {min(held_scores):.3f} |")
    if args.ship:
        from search_spaces.portfolio import PORTFOLIO_FILE

        PORTFOLIO_FILE.write_text(json.dumps(ship(cands, pool_bests, args.max_epochs), indent=1) + "\n")
        print(f"wrote {PORTFOLIO_FILE}")
    text = "\n".join(lines) + "\n"
    (out / "portfolio.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
