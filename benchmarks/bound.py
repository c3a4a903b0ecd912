"""How soon *could* a search reach the quality study's target? Replayed searches over real learning curves.

    python -m benchmarks.bound --task forecast --pool 64                       # train 64 random configurations, then replay
    python -m benchmarks.bound --task forecast --pool-file benchmarks/results/pool-forecast.json \\
        --record benchmarks/results/quality-forecast-pairings.json                # replay a saved pool against a study's target

The quality study (`benchmarks/quality.py`) asks a searcher and scheduler to reach random search's median best
at the budget within a fraction of random search's epochs. This measures what that asks for. It trains a pool
of configurations drawn at random from a task's bundled space, each to `--max-epochs`, through the
orchestrator's own path (the random searcher, the one trainable), and keeps every epoch's validation value.
Then it replays `--draws` searches, each drawing configurations uniformly from the pool (as random search and
TPE's random start-up trials do), at no training cost, and reports the median epochs each needs to reach the
target:

- random search: every configuration trained to the end, in draw order;
- the promoting ASHA: the orchestrator's own `PromotingASHA` class, fed the pool's curves one trial at a time,
  for each `--asha GRACE:FACTOR` asked;
- an oracle scheduler: it knows after one epoch whether a configuration will ever reach the target, spends
  exactly that one epoch on each that will not, and trains the first that will until it does. A scheduler
  that judges configurations by training them cannot spend less (it must train each at least one epoch, and
  the one that reaches the target until it does), so the oracle's median is a lower bound for every
  scheduler paired with a uniform sampler; only a searcher that samples better than uniformly can beat it.

The target is `--target`, or the `target` of a quality study's record (`--record`), or else random search's
median best at the budget computed from the pool itself (the best of `--random-trials` uniform draws; exact
for the pool, and far steadier than the median of the quality study's ten searches).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

from benchmarks.study import RESULTS_DIR, TASKS

Curve = list[float]  # one configuration's validation value after each epoch (inf: diverged or missing)


def random_study(task: str, trials: int, max_epochs: int) -> argparse.Namespace:
    """The quality study's options for one random search of `trials` trials of `max_epochs` epochs each."""
    return argparse.Namespace(task=task, random_trials=trials, trials=trials, max_epochs=max_epochs, grace_period=1,
                              reduction_factor=2, promote=None, defaults_first=False)


def collect_pool(task: str, size: int, max_epochs: int, seed: int) -> list[dict[str, Any]]:
    """`size` configurations of the task's bundled space, drawn by the random searcher with `seed` and each trained
    for `max_epochs` through the orchestrator's tuning path: [{"config", "curve", "epoch_seconds"}] in start order."""
    from benchmarks.study import experiment, row_value, run_search
    from orchestrator.reading import results as R
    from orchestrator.running import cluster

    cluster.start_ray(None)
    metric = TASKS[task][2]
    with tempfile.TemporaryDirectory(prefix="bound-") as storage:
        raw = experiment("random:fifo", seed, random_study(task, size, max_epochs), storage)
        run_search(raw, Path(storage), budget=size * max_epochs)
        trials = R.load_trials(Path(storage) / raw["name"])
        return [{"config": t.config, "curve": [row_value(r, metric) for r in t.rows],
                 "epoch_seconds": [r.get("epoch_time_s") for r in t.rows]} for t in trials]


def read_pool(path: str, task: str, max_epochs: int, option: str) -> list[dict[str, Any]]:
    """A pool saved by `main`; refused (exit, naming `option`) when it was trained for another task or epochs."""
    saved = json.loads(Path(path).read_text())
    if saved.get("task") != task or saved.get("max_epochs") != max_epochs:
        raise SystemExit(f"{option} {path}: its task and epochs are {saved.get('task')!r}, {saved.get('max_epochs')!r}; "
                         f"this study's are {task!r}, {max_epochs!r}")
    return saved["pool"]


def curves_of(pool: list[dict[str, Any]]) -> list[Curve]:
    return [[math.inf if v is None else float(v) for v in p["curve"]] for p in pool]


# --- the replayed searches: each returns the epochs spent when the best so far first reached `target` (inf: not
# within `budget`), drawing configurations with `draw()`.

def random_search(draw: Callable[[], Curve], target: float, budget: int) -> float:
    spent = 0
    while spent < budget:
        for value in draw():
            spent += 1
            if value <= target:
                return spent
            if spent >= budget:
                break
    return math.inf


def oracle(draw: Callable[[], Curve], target: float, budget: int) -> float:
    spent = 0
    while spent < budget:
        curve = draw()
        reach = next((epoch for epoch, value in enumerate(curve, 1) if value <= target), None)
        if reach is not None:
            return float(spent + reach) if spent + reach <= budget else math.inf
        spent += 1
    return math.inf


class _Trial:
    """The little of a Tune trial the scheduler reads: an id and a status."""

    def __init__(self, trial_id: str, curve: Curve):
        self.trial_id, self.curve, self.status, self.epochs = trial_id, curve, "PENDING", 0


class _Search:
    """The little of Tune's controller the scheduler asks: the trials, and whether the searcher has more (always)."""

    def __init__(self):
        self.trials: list[_Trial] = []
        self.search_alg = self

    def get_trials(self) -> list[_Trial]:
        return self.trials

    def is_finished(self) -> bool:
        return False


def promoting_asha(draw: Callable[[], Curve], target: float, budget: int, *, grace: int, factor: float, max_epochs: int) -> float:
    """One trial at a time, as the quality study runs: a promotion the scheduler queued runs first, else a new draw."""
    from ray.tune.schedulers import TrialScheduler

    from orchestrator.search.schedulers.asha import PromotingASHA

    scheduler = PromotingASHA("training_iteration", max_epochs, grace, factor)
    scheduler.set_search_properties("loss", "min")
    search, spent, best = _Search(), 0, math.inf
    while spent < budget:
        trial: Optional[_Trial] = scheduler.choose_trial_to_run(search)
        if trial is None:
            trial = _Trial(str(len(search.trials)), draw())
            search.trials.append(trial)
            scheduler.on_trial_add(search, trial)
        trial.status = "RUNNING"
        while True:
            value = trial.curve[trial.epochs] if trial.epochs < len(trial.curve) else math.inf
            trial.epochs += 1
            spent += 1
            best = min(best, value)
            if best <= target:
                return float(spent)
            if spent >= budget:
                return math.inf
            result = {"training_iteration": trial.epochs, "loss": value}
            if trial.epochs >= min(max_epochs, len(trial.curve)):
                trial.status = "TERMINATED"
                scheduler.on_trial_complete(search, trial, result)
                break
            if scheduler.on_trial_result(search, trial, result) == TrialScheduler.PAUSE:
                trial.status = "PAUSED"
                break
    return math.inf


def replay(search: Callable[..., float], curves: list[Curve], target: float, budget: int, draws: int, seed: int, **options) -> list[float]:
    """`draws` replays of one search, each with its own seeded uniform draws from the pool."""
    out = []
    for n in range(draws):
        rng = random.Random(seed * 1_000_003 + n)
        out.append(search(lambda: rng.choice(curves), target, budget, **options))
    return out


def estimate_target(curves: list[Curve], random_trials: int) -> float:
    """Random search's median best at the budget, for `random_trials` configurations drawn uniformly from the pool.

    Exact for the pool, not sampled: the best of k draws is worse than the j-th best configuration with
    probability ((n - j) / n) ** k, so the median is the j-th best for the least j that makes that at most 1/2."""
    bests = sorted(min(c, default=math.inf) for c in curves)
    n = len(bests)
    j = math.ceil(n * (1 - 0.5 ** (1 / random_trials)) - 1e-9)
    return bests[max(j, 1) - 1]


def _median(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.0f}" if math.isfinite(med) else "not reached"


def study(pool: list[dict[str, Any]], args) -> tuple[str, dict[str, Any]]:
    """The replayed searches' table and record."""
    curves = curves_of(pool)
    budget = args.random_trials * args.max_epochs
    if args.target is not None:
        target, source = args.target, "given"
    elif args.record:
        record = json.loads(Path(args.record).read_text())
        if record.get("args", {}).get("task") != args.task:
            raise SystemExit(f"--record {args.record}: its task is {record.get('args', {}).get('task')!r}, this study's is {args.task!r}")
        target, source = float(record["target"]), f"the target of the quality study {Path(args.record).name}"
    else:
        target, source = estimate_target(curves, args.random_trials), "estimated from the pool"
    metric = TASKS[args.task][2]
    hits = [c for c in curves if min(c[: args.max_epochs], default=math.inf) <= target]
    share = len(hits) / len(curves)
    searches: dict[str, list[float]] = {
        "random search (each configuration to the end)": replay(random_search, curves, target, budget, args.draws, args.seed),
        "oracle scheduler (lower bound for a uniform sampler)": replay(oracle, curves, target, budget, args.draws, args.seed),
    }
    for spec in args.asha:
        grace, factor = spec
        searches[f"promoting ASHA, grace {grace}, ×{factor:g}"] = replay(
            promoting_asha, curves, target, budget, args.draws, args.seed, grace=grace, factor=factor, max_epochs=args.max_epochs)
    rows = [f"| {name} | {_median(v)} | {sum(math.isfinite(x) for x in v) / len(v):.0%} |" for name, v in searches.items()]
    needed = math.log(0.5) / math.log(1 - share) if 0 < share < 1 else (1.0 if share == 1 else math.inf)
    lines = [
        f"{TASKS[args.task][3]}, bundled `{TASKS[args.task][1]}` space: a pool of {len(curves)} random configurations, each "
        f"trained {args.max_epochs} epochs; {args.draws} replayed searches per row, each drawing uniformly from the pool; budget "
        f"{budget} epochs ({args.random_trials} × {args.max_epochs}); one trial at a time.",
        f"Target: {metric} {target:.3f} ({source}). {len(hits)} of the pool's {len(curves)} configurations ({share:.1%}) reach it "
        f"within {args.max_epochs} epochs" + (f": a uniform sampler needs {needed:.0f} draws for an even chance of one." if math.isfinite(needed) else "."),
        "",
        f"| replayed search | epochs to reach the target: median | searches reaching it within {budget} epochs |",
        "|---|---|---|",
        *rows,
        "",
        f"One third of the budget is {budget / 3:.0f} epochs.",
    ]
    record = {"task": args.task, "target": target, "target_source": source, "budget_epochs": budget, "pool_size": len(curves),
              "reaching_share": share, "draws": args.draws,
              "searches": {name: [None if not math.isfinite(x) else x for x in v] for name, v in searches.items()},
              "medians": {name: (statistics.median(v) if math.isfinite(statistics.median(v)) else None) for name, v in searches.items()}}
    return "\n".join(lines), record


def _asha_spec(text: str) -> tuple[int, float]:
    grace, _, factor = text.partition(":")
    try:
        spec = int(grace), float(factor or 2)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GRACE:FACTOR such as 1:2, got {text!r}") from None
    if spec[0] < 1 or spec[1] <= 1:
        raise argparse.ArgumentTypeError(f"expected a grace of at least 1 and a factor above 1, got {text!r}")
    return spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bound", description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="forecast")
    p.add_argument("--pool", type=int, default=64, help="configurations to train for the pool")
    p.add_argument("--pool-seed", type=int, default=100, help="the random searcher's seed for the pool (the quality study uses 0..9)")
    p.add_argument("--pool-file", help="replay a pool saved by an earlier run (its JSON) instead of training one")
    p.add_argument("--max-epochs", type=int, default=8)
    p.add_argument("--random-trials", type=int, default=12, help="random search's trials: the budget is these × --max-epochs")
    p.add_argument("--asha", type=_asha_spec, action="append", metavar="GRACE:FACTOR",
                   help="a promoting ASHA to replay (repeatable; default 1:2, the orchestrator's)")
    p.add_argument("--target", type=float, help="the validation value to reach")
    p.add_argument("--record", metavar="JSON", help="take the target from a quality study's record")
    p.add_argument("--draws", type=int, default=4000, help="replayed searches per row")
    p.add_argument("--seed", type=int, default=0, help="seed of the replays' draws")
    p.add_argument("--tag", default="", help="added to the result files' names (bound-<task>-<tag>), to keep a variant apart")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    args.asha = args.asha or [(1, 2.0)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.pool_file:
        pool = read_pool(args.pool_file, args.task, args.max_epochs, "--pool-file")
    else:
        began = time.perf_counter()
        pool = collect_pool(args.task, args.pool, args.max_epochs, args.pool_seed)
        saved = {"task": args.task, "max_epochs": args.max_epochs, "seed": args.pool_seed, "seconds": round(time.perf_counter() - began, 1), "pool": pool}
        (out / f"pool-{args.task}.json").write_text(json.dumps(saved, default=str) + "\n")
    text, record = study(pool, args)
    stem = out / (f"bound-{args.task}" + (f"-{args.tag}" if args.tag else ""))
    stem.with_suffix(".md").write_text(text + "\n")
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(text)
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
