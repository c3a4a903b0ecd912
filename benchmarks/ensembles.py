"""The ensemble of the top K against the best single model, on the three bundled tasks: the quality study's default
search (TPE with the promoting ASHA, its epoch budget), then `export --ensemble K` on each run.

    python -m benchmarks.ensembles --seeds 5 --k 5            # all three tasks; --task T for one

For each task: the median over seeds of the best single model's and the ensemble's test metric (and validation,
where the ensemble is never worse by construction), with how often the ensemble is better on test. Written to
`benchmarks/results/ensembles.md` and `.json`.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.study import RESULTS_DIR, TASKS, epoch_budget, experiment
from trainables.constants import test_key

PAIRING = "hyperopt:asha"  # the quality study's default contender


def study_args(task: str) -> argparse.Namespace:
    """The quality study's defaults (benchmarks/quality.py), for its experiment of one search."""
    return argparse.Namespace(task=task, random_trials=12, trials=48, max_epochs=8, grace_period=1, reduction_factor=2,
                              promote=None, defaults_first=False, points=None, warm_start=True)


def one_seed(task: str, seed: int, k: int, storage: str) -> dict[str, Any]:
    """One search, its exported best model and its ensemble: the validation and test metric of both."""
    import orchestrator
    from orchestrator.running.best_model import export_ensemble
    from orchestrator.running.prepare import experiment_from_run, prepare

    args = study_args(task)
    raw = {**experiment(PAIRING, seed, args, storage), "checkpoint": {"keep": 1}}
    run = orchestrator.run(raw, stop=epoch_budget(args.random_trials * args.max_epochs), out=io.StringIO())
    metric = run.metric
    single = run.best_metrics["metrics"]
    p = prepare(experiment_from_run(run.path, trackers=False))
    made = export_ensemble(run.path, p.data, p.metric, p.mode, k)
    return {"seed": seed, "metric": metric, "single": {metric: single[metric], test_key(metric): single[test_key(metric)]},
            "ensemble": {metric: made.metrics[metric], test_key(metric): made.metrics[test_key(metric)]},
            "members": [(m["trial_id"], m["family"], round(m["weight"], 3)) for m in made.members]}


def summary(task: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    metric = rows[0]["metric"]
    test = test_key(metric)

    def median(which: str, key: str) -> float:
        return statistics.median(r[which][key] for r in rows)

    return {"task": task, "metric": metric, "seeds": len(rows), "single_val": median("single", metric),
            "ensemble_val": median("ensemble", metric), "single_test": median("single", test),
            "ensemble_test": median("ensemble", test),
            "ensemble_better_on_test": sum(r["ensemble"][test] < r["single"][test] for r in rows),
            "members": statistics.median(len(r["members"]) for r in rows)}


def table(summaries: list[dict[str, Any]], k: int) -> str:
    lines = [f"| task (metric, lower is better) | seeds | best single: val / test | ensemble of the top {k}: val / test | "
             "ensemble better on test | members (median) |", "| --- | --- | --- | --- | --- | --- |"]
    for s in summaries:
        lines.append(f"| {s['task']} ({s['metric']}) | {s['seeds']} | {s['single_val']:.4g} / {s['single_test']:.4g} | "
                     f"{s['ensemble_val']:.4g} / {s['ensemble_test']:.4g} | {s['ensemble_better_on_test']} of {s['seeds']} | "
                     f"{s['members']:g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), action="append", help="a task (repeat; default: all three)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--k", type=int, default=5, help="the ensemble's candidates: the top K trials")
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    from orchestrator.running import cluster

    cluster.start_ray(None)
    began, record = time.perf_counter(), {"k": args.k, "pairing": PAIRING, "tasks": {}}
    with tempfile.TemporaryDirectory(prefix="ensembles-") as storage:
        for task in args.task or sorted(TASKS):
            rows = []
            for seed in range(args.seeds):
                rows.append(one_seed(task, seed, args.k, storage))
                print(f"{task} seed {seed}: {rows[-1]['single']} -> ensemble {rows[-1]['ensemble']}", flush=True)
            record["tasks"][task] = {"summary": summary(task, rows), "seeds": rows}
    record["elapsed_s"] = round(time.perf_counter() - began, 1)
    text = table([t["summary"] for t in record["tasks"].values()], args.k)
    out = Path(args.out)
    (out / "ensembles.json").write_text(json.dumps(record, indent=2))
    (out / "ensembles.md").write_text(f"# Ensemble of the top {args.k} against the best single model\n\n"
                                      f"`python -m benchmarks.ensembles --seeds {args.seeds} --k {args.k}` "
                                      f"({record['elapsed_s'] / 60:.1f} min on this machine)\n\n{text}\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
