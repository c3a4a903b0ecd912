"""Quality benchmark: searcher x scheduler pairings against random search without early stopping, at equal budget.

    python -m benchmarks.quality --seeds 5                                  # TPE + ASHA (the default pairing)
    python -m benchmarks.quality --pairing optuna:asha --pairing bohb:hyperband --task tabular
    python -m benchmarks.quality --pairing all                              # every valid pairing
    python -m benchmarks.quality --promote --baseline benchmarks/results/quality-forecast-pairings.json  # promoting ASHA; random search's curves reused
    python -m benchmarks.quality --points benchmarks/results/portfolio-loto-forecast.json  # a held-out portfolio run first

Both strategies run through the orchestrator's own path (experiment config, searcher and scheduler
registries, `tuning.build_tuner`, the one trainable) on a built-in task with its bundled space (four
model families): `--task forecast` (yearly sunspots, the default; seconds per search) or `--task charlm`
(a 40k-character slice of the charlm corpus; about a minute per search) or `--task tabular` (the bundled
digits table), once per seed, in one local Ray. Each `--pairing SEARCHER:SCHEDULER` is one contender.

The budget is counted in training epochs, the unit both strategies spend: random search runs
`--random-trials` trials of `--max-epochs` epochs each; a contender gets more trials (`--trials`: its
scheduler stops most of them early) and is cut off at the same number of epochs. Trials run one at a time,
and epochs are ordered by when they ended (HyperBand pauses and resumes trials), so the order in which
epochs were spent, and the best validation metric after each of them, are exact. Reported per strategy:
the best validation metric at the budget (median and range over seeds), and the epochs and training
seconds it took to reach the target = the median over seeds of random search's best at the budget.
Wall time is not the unit: it mixes in Ray's start-up and whatever else the machine is doing.

Contenders run the orchestrator's default warm start (the shipped portfolio, `search_spaces/portfolio.py`)
unless `--no-warm-start` or `--points` (given points instead); random search, the baseline, never does.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.study import (
    BASELINE,
    RESULTS_DIR,
    TASKS,
    Curve,
    experiment,
    first_points,
    run_search,
)


def pairing_label(pairing: str) -> str:
    searcher, scheduler = pairing.split(":")
    return "random search, no early stopping" if pairing == BASELINE else f"{searcher} + {scheduler}"


def pairings(asked: list[str]) -> list[str]:
    """The contenders: `all` is every pairing the orchestrator accepts; each must be SEARCHER:SCHEDULER and valid."""
    from orchestrator.search.schedulers import SCHEDULERS, pairing_problem
    from orchestrator.search.searchers import SEARCHERS

    if asked == ["all"]:
        return [f"{s}:{k}" for s in SEARCHERS for k in SCHEDULERS if s != "grid" and not pairing_problem(s, k) and f"{s}:{k}" != BASELINE]
    for pairing in asked:
        searcher, _, scheduler = pairing.partition(":")
        if searcher not in SEARCHERS or scheduler not in SCHEDULERS:
            raise SystemExit(f"--pairing {pairing!r}: expected SEARCHER:SCHEDULER with searcher in {', '.join(SEARCHERS)} "
                             f"and scheduler in {', '.join(SCHEDULERS)}")
        problem = pairing_problem(searcher, scheduler)
        if problem:
            raise SystemExit(f"--pairing {pairing!r}: {problem}")
    return asked


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "not reached"
    med = statistics.median(values)
    shown = fmt.format(med) if math.isfinite(med) else "not reached"
    missing = len(values) - len(finite)
    note = f", {missing} of {len(values)} never" if missing else ""
    return f"{shown} ({fmt.format(min(finite))}–{fmt.format(max(finite))}{note})"


def report(curves: dict[str, list[Curve]], budget: int, args) -> tuple[str, dict[str, Any]]:
    from orchestrator.search.searchers import startup_trials

    _, space, metric, title = TASKS[args.task]
    target = getattr(args, "target", None)
    if target is None:
        target = statistics.median(c.at_budget(budget) for c in curves[BASELINE])
    # Random search ends at its median final metric by spending its whole budget, so its budget is "its time":
    # in epochs, and in training seconds (the epochs of small and large models cost different amounts).
    spent = statistics.median(c.at_budget_seconds(budget) for c in curves[BASELINE])
    rows, verdicts = [], []
    record: dict[str, Any] = {"budget_epochs": budget, "target": target, "target_pool": getattr(args, "target_pool", None),
                              "random_budget_seconds": spent, "pairings": {}}
    for pairing, runs in curves.items():
        finals = [c.at_budget(budget) for c in runs]
        reach = [c.to_reach(target, budget) for c in runs]
        rec = {"best_at_budget": finals, "epochs_to_target": [r[0] for r in reach], "seconds_to_target": [r[1] for r in reach]}
        med_epochs, med_secs = statistics.median(rec["epochs_to_target"]), statistics.median(rec["seconds_to_target"])
        rec.update(fraction_of_budget_epochs=med_epochs / budget, fraction_of_budget_seconds=med_secs / spent if spent else math.inf)
        record["pairings"][pairing] = rec
        rows.append(f"| {pairing_label(pairing)} | {spread(finals)} | {spread(rec['epochs_to_target'], '{:.0f}')} | "
                    f"{spread(rec['seconds_to_target'], '{:.1f}')} |")
        if pairing == BASELINE:
            continue
        if math.isfinite(med_epochs):
            verdicts.append(f"{pairing_label(pairing)} reached random search's median final {metric} after {med_epochs:.0f} epochs and "
                            f"{med_secs:.1f} s of training (medians over seeds): {med_epochs / budget:.0%} of the {budget} epochs and "
                            f"{med_secs / spent:.0%} of the {spent:.1f} training seconds random search spends to end there.")
        else:
            verdicts.append(f"{pairing_label(pairing)}: the median run did not reach random search's median final {metric} within the budget.")
    lines = [
        f"{title}, bundled `{space}` space, {len(curves[BASELINE])} seeds; budget {budget} epochs "
        f"(random search: {args.random_trials} trials × {args.max_epochs} epochs; each pairing: up to {args.trials} trials, "
        f"grace {args.grace_period}, ×{args.reduction_factor} where its scheduler takes them, TPE's first "
        f"{startup_trials(args.trials, args.startup_fraction)} trials random, cut off at the budget"
        + ("; each pairing first runs every family's default configuration" if args.defaults_first else "")
        + (f"; each pairing first runs the {len(first_points(args))} points of {Path(args.points).name}" if getattr(args, "points", None)
           else "; each pairing first runs the shipped portfolio" if getattr(args, "warm_start", False) and not args.defaults_first else "")
        + {True: "; ASHA promotes (pauses trials at its rungs)", False: "; ASHA stops trials (no promotions)"}.get(getattr(args, "promote", None), "")
        + "); one trial at a time.",
        f"Target: random search's median best {metric} at the budget = {target:.3f}"
        + (f" (estimated from the {Path(args.target_pool).name} pool of random configurations' curves)."
           if getattr(args, "target_pool", None) else f" (the median of these {len(curves[BASELINE])} searches)."),
        "",
        f"| pairing | best {metric} at the budget: median (range) | epochs to reach the target: median (range) | training seconds to reach it |",
        "|---|---|---|---|",
        *rows,
        "",
        *verdicts,
    ]
    return "\n".join(lines), record


def _finite(value: Any) -> Any:
    """`value` with inf/NaN as None (strict JSON has no infinity; "never reached" reads as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dump(record: dict[str, Any]) -> str:
    """The record as JSON: indented, except each per-epoch curve, which stays on one line."""
    head = {k: v for k, v in record.items() if k != "curves"}
    curves = ",\n".join(
        f'    "{name}": [\n' + ",\n".join("      " + json.dumps(c) for c in runs) + "\n    ]" for name, runs in record.get("curves", {}).items()
    )
    return json.dumps(head, indent=2)[:-2] + ',\n  "curves": {\n' + curves + "\n  }\n}\n"


def baseline_curves(path: str, args) -> list[Curve]:
    """Random search's curves, seeds 0..args.seeds-1, from an earlier study's JSON record; refused (exit) when that
    study's task, budget or seeds differ."""
    record = json.loads(Path(path).read_text())
    was = record.get("args", {})
    for key in ("task", "random_trials", "max_epochs"):
        if was.get(key) != getattr(args, key):
            raise SystemExit(f"--baseline {path}: its {key} is {was.get(key)!r}, this study's is {getattr(args, key)!r}")
    runs = record.get("curves", {}).get(BASELINE, [])
    if len(runs) < args.seeds:
        raise SystemExit(f"--baseline {path}: it holds {len(runs)} seed(s) of random search, this study needs {args.seeds}")
    return [_curve(run) for run in runs[: args.seeds]]


def _curve(run: dict[str, Any]) -> Curve:
    """A search's curve as a record holds it (which writes infinity, no finite value yet, as null)."""
    return Curve(**{**run, "best": [math.inf if b is None else b for b in run["best"]]})


def pool_target(path: str, args) -> float:
    """Random search's median best at the budget, estimated from a pool of configurations' curves saved by
    `benchmarks.bound`: far less noisy than the median of ten searches. Refused (exit) for another task or epochs."""
    from benchmarks.bound import curves_of, estimate_target, read_pool

    pool = read_pool(path, args.task, args.max_epochs, "--target-pool")
    return estimate_target(curves_of(pool), args.random_trials)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="forecast")
    p.add_argument("--seeds", type=int, default=10, help="searches per strategy, seeds 0..N-1")
    p.add_argument("--random-trials", type=int, default=12)
    p.add_argument("--pairing", action="append", metavar="SEARCHER:SCHEDULER",
                   help="a contender (repeatable; default hyperopt:asha; `all`: every valid pairing); random:fifo always runs as the baseline")
    p.add_argument("--trials", "--asha-trials", dest="trials", type=int, default=48,
                   help="trials each pairing may start (it is cut off at the budget)")
    p.add_argument("--max-epochs", type=int, default=8)
    p.add_argument("--grace-period", type=int, default=1)
    p.add_argument("--reduction-factor", type=int, default=2)
    p.add_argument("--startup-fraction", type=float, default=None,
                   help="random trials before TPE models, as a fraction of --trials (default: the orchestrator's own)")
    p.add_argument("--promote", action=argparse.BooleanOptionalAction, default=None,
                   help="ASHA pauses trials at its rungs and promotes the best (the paper's variant), or (--no-promote) stops "
                        "them (Ray's); default: the orchestrator's default")
    p.add_argument("--defaults-first", action="store_true",
                   help="each contender first runs every family's default configuration (`family_defaults`), and learns from it")
    p.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=True,
                   help="contenders run the shipped portfolio first (the orchestrator's default; learned on these very tasks, so "
                        "judge it with --points and a leave-one-task-out portfolio); --no-warm-start: without it")
    p.add_argument("--points", metavar="JSON",
                   help="each contender first runs these flat points (a JSON list, e.g. a portfolio from `benchmarks.portfolio`), and learns from them")
    p.add_argument("--baseline", metavar="JSON",
                   help="take random search's curves from an earlier study's record (same task, budget and seeds) instead of "
                        "running it again: one trial at a time with seeded trials, it repeats exactly")
    p.add_argument("--target-pool", metavar="JSON",
                   help="estimate the target from a pool of random configurations' curves (`python -m benchmarks.bound`): random "
                        "search's median best for draws from it, instead of the median of --seeds searches")
    p.add_argument("--rescore", metavar="JSON",
                   help="print an earlier study's table again from its record's curves (with --target-pool: against that target); "
                        "nothing runs and nothing is written")
    p.add_argument("--tag", default="", help="added to the result files' names, to keep a variant's study apart")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    if args.rescore:  # the study as its record ran it
        record = json.loads(Path(args.rescore).read_text())
        for key in ("task", "seeds", "random_trials", "trials", "max_epochs", "grace_period", "reduction_factor", "startup_fraction",
                    "defaults_first", "promote", "points", "warm_start"):
            setattr(args, key, record["args"].get(key))
    args.target = pool_target(args.target_pool, args) if args.target_pool else None  # checked before Ray starts
    from orchestrator.search.searchers import STARTUP_FRACTION

    # The study's TPE start-up share, given to each search through `orchestrator.run(startup_fraction=...)`.
    args.startup_fraction = STARTUP_FRACTION if args.startup_fraction is None else args.startup_fraction
    if args.rescore:
        curves = {name: [_curve(run) for run in runs] for name, runs in record["curves"].items()}
        print(report(curves, record["budget_epochs"], args)[0])
        return 0

    contenders = [BASELINE, *[c for c in pairings(args.pairing or ["hyperopt:asha"]) if c != BASELINE]]
    first_points(args)  # checked before Ray starts
    from orchestrator.running import cluster

    budget = args.random_trials * args.max_epochs
    earlier = baseline_curves(args.baseline, args) if args.baseline else []  # checked before Ray starts
    cluster.start_ray(None)
    curves: dict[str, list[Curve]] = {c: [] for c in contenders}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quality-") as storage:
        for seed in range(args.seeds):
            for pairing in contenders:
                if pairing == BASELINE and earlier:
                    curve = earlier[seed]
                else:
                    curve = run_search(experiment(pairing, seed, args, storage), Path(storage), budget, args.startup_fraction)
                curves[pairing].append(curve)
                print(f"seed {seed} {pairing_label(pairing)}: {curve.epochs[-1] if curve.epochs else 0} epochs, "
                      f"best at budget {curve.at_budget(budget):.3f}", flush=True)
            # Written after every seed: a long study stopped early still leaves its finished seeds' table.
            text, stem = write(curves, budget, args, contenders, time.perf_counter() - began)
    print("\n" + text)
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


def write(curves: dict[str, list[Curve]], budget: int, args, contenders: list[str], elapsed: float) -> tuple[str, Path]:
    """The study's table and record so far, as `<out>/quality-<task>[-pairings][-tag].md` and `.json`."""
    from benchmarks.harness import machine

    text, record = report(curves, budget, args)
    info = machine()
    text += (f"\n\nWhole study: {elapsed:.0f} s of wall time on {info['cpu']}, {info['cpus']} CPUs; "
             f"torch {info['torch']}, ray {info['ray']}, hyperopt {info['hyperopt']}.\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record.update(args={k: v for k, v in vars(args).items() if k != "out"}, machine=info, curves={s: [c.__dict__ for c in cs] for s, cs in curves.items()})
    # The default contender keeps the file name benchmarks/README.md's table cites; other studies get their own.
    stem = out / ((f"quality-{args.task}" if contenders == [BASELINE, "hyperopt:asha"] else f"quality-{args.task}-pairings")
                  + (f"-{args.tag}" if args.tag else ""))
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(dump(_finite(record)))
    return text, stem


if __name__ == "__main__":
    sys.exit(main())
