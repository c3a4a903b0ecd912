"""One search of the quality study, run through the orchestrator: the bundled tasks it runs on, the experiment a
contender's search is, and its curve of the best value so far per epoch spent. Shared by the quality study, its bound
(replayed searches) and the portfolio's trainings."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.rows import usable_value

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# task -> (task options, bundled space, metric, description)
TASKS = {
    "forecast": ({"kind": "forecast"}, "forecast", "val_rmse", "Forecast task (yearly sunspots)"),
    # Log loss, not accuracy: every metric here is "lower is better", and accuracy ties on a small validation set.
    "tabular": ({"kind": "tabular"}, "tabular", "val_log_loss", "Tabular task (bundled digits table)"),
    "charlm": ({"kind": "charlm", "max_chars": 40_000, "seq_len": 64}, "charlm", "val_bpc", "Charlm task (first 40k characters)"),
}
BASELINE = "random:fifo"  # the yardstick every contender is measured against: random search, no early stopping


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


def scheduler_options(scheduler: str, args) -> dict[str, Any]:
    """The benchmark's options for a scheduler (each takes only its own keys)."""
    from orchestrator.search.schedulers import SCHEDULERS

    wanted = {"max_epochs": args.max_epochs, "grace_period": args.grace_period, "reduction_factor": args.reduction_factor,
              **({} if getattr(args, "promote", None) is None else {"promote": args.promote})}  # None: the scheduler's default
    return {"kind": scheduler, **{k: v for k, v in wanted.items() if k in SCHEDULERS[scheduler].options.model_fields}}


def family_defaults(space_name: str) -> list[dict[str, Any]]:
    """One point per family of a bundled space (flat, as `points_to_evaluate` takes them): the family's own
    constructor defaults and the training defaults (Adam, lr 1e-3, ...), each moved into the space where it
    lies outside (a point naming only its family, moved in). A warm start many tools use (SMAC's default
    configuration, FLAML's starting point)."""
    from search_spaces import load_space
    from search_spaces.portfolio import into_space

    space = load_space(space_name)
    return [into_space({"family": family}, space) for family in space.families]


def first_points(args) -> list[dict[str, Any]]:
    """The flat points of `--points` (a JSON list, as `benchmarks.portfolio` writes them), or none."""
    path = getattr(args, "points", None)
    if not path:
        return []
    points = json.loads(Path(path).read_text())
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise SystemExit(f"--points {path}: expected a JSON list of flat points (mappings of family and hyperparameters)")
    return points


def experiment(pairing: str, seed: int, args, storage: str) -> dict[str, Any]:
    searcher, scheduler = pairing.split(":")
    trials = args.random_trials if pairing == BASELINE else args.trials
    points = [] if pairing == BASELINE else family_defaults(TASKS[args.task][1]) if args.defaults_first else first_points(args)
    return {
        "name": f"quality-{searcher}-{scheduler}-{seed}",
        "task": TASKS[args.task][0],
        "search_space": TASKS[args.task][1],
        "metric": TASKS[args.task][2],
        "searcher": searcher,
        "scheduler": scheduler_options(scheduler, args),
        "num_samples": trials,
        "max_concurrent": 1,  # one at a time: the order in which epochs are spent is exact
        "resources": {"cpu": 1, "gpu": 0},
        "checkpoint": {"keep": 1},
        "seed": seed,
        "storage": storage,
        "max_failures": 0,
        **({"points_to_evaluate": points} if points else {}),
        # Random search stays uniform; given points replace the shipped portfolio (a leave-one-task-out one is the honest test).
        "warm_start": "portfolio" if pairing != BASELINE and not points and getattr(args, "warm_start", True) else "none",
    }


def epoch_budget(budget: int):
    """A Tune Stopper that ends the search once `budget` epochs (results) were reported: what a contender spends
    beyond it is never counted, so it is not spent either."""
    from ray.tune.stopper import Stopper

    class EpochBudget(Stopper):
        def __init__(self):
            self.spent = 0

        def __call__(self, trial_id: str, result: dict) -> bool:
            self.spent += 1
            return False

        def stop_all(self) -> bool:
            return self.spent >= budget

    return EpochBudget()


def row_value(row: dict[str, Any], metric: str) -> float:
    """An epoch's validation value as a search counts it: a diverged, missing or non-finite one is infinity (never best)."""
    value = usable_value(row, metric)
    return math.inf if value is None else value


def run_search(raw: dict[str, Any], storage: Path, budget: int, startup_fraction: float | None = None) -> Curve:
    """One search run as a user runs it (`orchestrator.run`), ended at the epoch budget by its `stop` option, with
    TPE's `startup_fraction` (None: the default); its curve read back from the run directory."""
    import orchestrator
    from orchestrator.reading import results as R

    run = orchestrator.run({**raw, "storage": str(storage)}, stop=epoch_budget(budget), startup_fraction=startup_fraction,
                           out=io.StringIO())  # the per-trial progress lines are not the point here
    metric = run.metric
    epochs, seconds, best = [], [], []
    spent, compute, so_far = 0, 0.0, math.inf
    trials = R.load_trials(run.path)  # in start order; one trial at a time
    # Epochs in the order they ended: a HyperBand trial pauses at a rung and resumes after others ran.
    for row in sorted((row for trial in trials for row in trial.rows), key=lambda row: row.get("timestamp", 0.0)):
        spent += 1
        compute += float(row.get("epoch_time_s", 0.0))
        so_far = min(so_far, row_value(row, metric))
        epochs.append(spent)
        seconds.append(compute)
        best.append(so_far)
    return Curve(epochs, seconds, best, [len(t.rows) for t in trials])
