"""Quality benchmark: ASHA + TPE against random search without early stopping, at equal budget.

    python -m benchmarks.quality --seeds 5

Both strategies run through the orchestrator's own path (experiment config, searcher and scheduler
registries, `tuning.build_tuner`, the one trainable) on a built-in task with its bundled space (four
model families): `--task forecast` (yearly sunspots, the default; seconds per search) or `--task charlm`
(a 40k-character slice of the charlm corpus; about a minute per search), once per seed, in one local Ray.

The budget is counted in training epochs, the unit both strategies spend: random search runs
`--random-trials` trials of `--max-epochs` epochs each; ASHA + TPE gets more trials (ASHA stops most of
them early) and is cut off at the same number of epochs. Trials run one at a time, so the order in which
epochs were spent, and the best validation RMSE after each of them, are exact. Reported per strategy:
the best validation metric at the budget (median and range over seeds), and the epochs and training
seconds it took to reach the target = the median over seeds of random search's best at the budget.
Wall time is not the unit: it mixes in Ray's start-up and whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# task -> (task options, bundled space, metric, description)
TASKS = {
    "forecast": ({"kind": "forecast"}, "forecast", "val_rmse", "Forecast task (yearly sunspots)"),
    "charlm": ({"kind": "charlm", "max_chars": 40_000, "seq_len": 64}, "charlm", "val_bpc", "Charlm task (first 40k characters)"),
}
STRATEGIES = {
    "asha_tpe": ("hyperopt", "asha", "ASHA + TPE"),
    "random_fifo": ("random", "fifo", "random search, no early stopping"),
}


@dataclass
class Curve:
    """One search: after each epoch spent (in order), the epochs so far, training seconds so far, best so far."""

    epochs: list[int]
    seconds: list[float]
    best: list[float]
    trial_epochs: list[int]  # epochs each trial ran, in start order

    def at_budget(self, budget: int) -> float:
        kept = [b for e, b in zip(self.epochs, self.best) if e <= budget]
        return kept[-1] if kept else math.inf

    def at_budget_seconds(self, budget: int) -> float:
        """Training seconds spent by the time the budget's last epoch ended."""
        kept = [s for e, s in zip(self.epochs, self.seconds) if e <= budget]
        return kept[-1] if kept else 0.0

    def to_reach(self, target: float, budget: int) -> tuple[float, float]:
        """(epochs, training seconds) when the best so far first reached `target` within the budget; inf if never."""
        for e, s, b in zip(self.epochs, self.seconds, self.best):
            if e > budget:
                break
            if b <= target:
                return float(e), s
        return math.inf, math.inf


def experiment(strategy: str, seed: int, args, storage: str) -> dict[str, Any]:
    searcher, scheduler, _ = STRATEGIES[strategy]
    trials = args.random_trials if strategy == "random_fifo" else args.asha_trials
    return {
        "name": f"quality-{strategy}-{seed}",
        "task": TASKS[args.task][0],
        "search_space": TASKS[args.task][1],
        "searcher": searcher,
        "scheduler": {"kind": scheduler, "max_epochs": args.max_epochs,
                      **({"grace_period": args.grace_period, "reduction_factor": args.reduction_factor} if scheduler == "asha" else {})},
        "num_samples": trials,
        "max_concurrent": 1,  # one at a time: the order in which epochs are spent is exact
        "resources": {"cpu": 1, "gpu": 0},
        "checkpoint": {"keep": 1},
        "seed": seed,
        "storage": storage,
        "max_failures": 0,
    }


def run_search(raw: dict[str, Any], storage: Path) -> Curve:
    """One search through the orchestrator's tuning path; its curve read back from the run directory."""
    from orchestrator import results as R
    from orchestrator import tuning
    from orchestrator.config import Experiment, check_space, parse_config
    from orchestrator.prepare import prepare

    file = storage / f"{raw['name']}.yaml"
    config = parse_config(raw, str(file))
    p = prepare(Experiment(config, check_space(config, file), file))
    metric = p.metric
    setup = tuning.build_tuner(p, str(storage))
    with contextlib.redirect_stdout(io.StringIO()):  # the per-trial progress lines are not the point here
        setup.tuner.fit()
    epochs, seconds, best = [], [], []
    spent, compute, so_far = 0, 0.0, math.inf
    trials = R.load_trials(storage / config.name)  # in start order; one trial at a time
    for trial in trials:
        for row in trial.rows:
            spent += 1
            compute += float(row.get("epoch_time_s", 0.0))
            value = row.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value) and not row.get("diverged"):
                so_far = min(so_far, value)
            epochs.append(spent)
            seconds.append(compute)
            best.append(so_far)
    return Curve(epochs, seconds, best, [len(t.rows) for t in trials])


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
    _, space, metric, title = TASKS[args.task]
    target = statistics.median(c.at_budget(budget) for c in curves["random_fifo"])
    rows, record = [], {"budget_epochs": budget, "target": target, "strategies": {}}
    for strategy, runs in curves.items():
        finals = [c.at_budget(budget) for c in runs]
        reach = [c.to_reach(target, budget) for c in runs]
        rec = {"best_at_budget": finals, "epochs_to_target": [r[0] for r in reach], "seconds_to_target": [r[1] for r in reach]}
        record["strategies"][strategy] = rec
        rows.append(
            f"| {STRATEGIES[strategy][2]} | {spread(finals)} | {spread(rec['epochs_to_target'], '{:.0f}')} | "
            f"{spread(rec['seconds_to_target'], '{:.1f}')} |"
        )
    med = {s: statistics.median(r["epochs_to_target"]) for s, r in record["strategies"].items()}
    # Random search ends at its median final metric by spending its whole budget, so its budget is "its time":
    # in epochs, and in training seconds (the epochs of small and large models cost different amounts).
    spent = statistics.median(c.at_budget_seconds(budget) for c in curves["random_fifo"])
    secs = statistics.median(record["strategies"]["asha_tpe"]["seconds_to_target"])
    record.update(asha_tpe_fraction_of_budget_epochs=med["asha_tpe"] / budget, random_budget_seconds=spent,
                  asha_tpe_fraction_of_budget_seconds=secs / spent)
    if math.isfinite(med["asha_tpe"]):
        verdict = (f"ASHA + TPE reached random search's median final {metric} after {med['asha_tpe']:.0f} epochs and {secs:.1f} s of "
                   f"training (medians over seeds): {med['asha_tpe'] / budget:.0%} of the {budget} epochs and {secs / spent:.0%} of the "
                   f"{spent:.1f} training seconds random search spends to end there.")
    else:
        verdict = f"ASHA + TPE's median run did not reach random search's median final {metric} within the budget."
    lines = [
        f"{title}, bundled `{space}` space, {len(curves['random_fifo'])} seeds; budget {budget} epochs "
        f"(random search: {args.random_trials} trials × {args.max_epochs} epochs; ASHA + TPE: up to {args.asha_trials} trials, "
        f"grace {args.grace_period}, ×{args.reduction_factor}, cut off at the budget); one trial at a time.",
        f"Target: random search's median best {metric} at the budget = {target:.3f}.",
        "",
        f"| strategy | best {metric} at the budget: median (range) | epochs to reach the target: median (range) | training seconds to reach it |",
        "|---|---|---|---|",
        *rows,
        "",
        verdict,
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="forecast")
    p.add_argument("--seeds", type=int, default=10, help="searches per strategy, seeds 0..N-1")
    p.add_argument("--random-trials", type=int, default=12)
    p.add_argument("--asha-trials", type=int, default=48, help="trials ASHA + TPE may start (it is cut off at the budget)")
    p.add_argument("--max-epochs", type=int, default=8)
    p.add_argument("--grace-period", type=int, default=1)
    p.add_argument("--reduction-factor", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    from orchestrator import cluster

    budget = args.random_trials * args.max_epochs
    cluster.start_ray(None)
    curves: dict[str, list[Curve]] = {s: [] for s in STRATEGIES}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quality-") as storage:
        for seed in range(args.seeds):
            for strategy in STRATEGIES:
                curve = run_search(experiment(strategy, seed, args, storage), Path(storage))
                curves[strategy].append(curve)
                print(f"seed {seed} {STRATEGIES[strategy][2]}: {curve.epochs[-1] if curve.epochs else 0} epochs, "
                      f"best at budget {curve.at_budget(budget):.3f}", flush=True)
    text, record = report(curves, budget, args)
    from benchmarks.harness import machine

    info = machine()
    text += (f"\n\nWhole study: {time.perf_counter() - began:.0f} s of wall time on {info['cpu']}, {info['cpus']} CPUs; "
             f"torch {info['torch']}, ray {info['ray']}, hyperopt {info['hyperopt']}.\n")
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record.update(args={k: v for k, v in vars(args).items() if k != "out"}, machine=info, curves={s: [c.__dict__ for c in cs] for s, cs in curves.items()})
    stem = out / f"quality-{args.task}"
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(dump(_finite(record)))
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
