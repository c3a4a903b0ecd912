"""The `orchestrator` commands that read what exists (a run, an exported model, the registries) and start no
search: best, export, tensorboard, report, sample, list. `cli` parses their arguments and calls them."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.errors import UserError
from trainables.constants import LATENCY_METHOD


def best(args) -> int:
    from orchestrator.reading import results as R
    from orchestrator.reading.selection import pareto_front
    from orchestrator.reading.storage import readable_run
    from orchestrator.watch.console import (
        baseline_lines,
        describe,
        ensemble_lines,
        step_lines,
    )

    run = R.read_run(readable_run(args.run_dir))
    trials = {t.trial_id: t for t in run.trials()}
    rows = R.leaderboard_rows(list(trials.values()), run.metric, run.mode, run.max_epochs)
    if args.pareto:
        front = {t.trial_id for t in pareto_front(list(trials.values()), run.metric, run.mode)}
        rows = [row for row in rows if row["trial_id"] in front]
    rows = rows[: args.top]
    best, ensemble = run.best_model(), run.ensemble()
    if args.json:
        shown = [{**{k: v for k, v in row.items() if k not in ("best", "hyperparameters")}, run.metric: row["best"],
                  "hyperparameters": row["hyperparameters"]} for row in rows]
        print(json.dumps({"run_dir": str(run.run_dir), "metric": run.metric, "mode": run.mode, "pareto": args.pareto,
                          "trials": shown, "best": best, "ensemble": ensemble, "baselines": run.baselines(),
                          "latency_method": LATENCY_METHOD}, indent=2))
        return 0
    what = "on the Pareto front of the metric, size and latency" if args.pareto else f"ranked by {run.metric} ({run.mode})"
    print(f"{run.run_dir.name}: {len(rows)} trial(s), {what}")
    print(f"{'#':>3}  {'trial':<10} {'status':<14} {'epochs':>6}  {run.metric:>12} {'params':>9} {'ms':>7}  hyperparameters")
    for row in rows:
        value = f"{row['best']:.4g}" if row["best"] is not None else "-"
        params = f"{row['params']:,}" if row["params"] is not None else "-"
        latency = f"{row['latency_ms']:.3g}" if row["latency_ms"] is not None else "-"
        print(f"{row['rank']:>3}  {row['trial_id']:<10} {row['status']:<14} {row['epochs']:>6}  {value:>12} {params:>9} {latency:>7}  "
              f"{describe(trials[row['trial_id']].config)}")
    if best:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in best["metrics"].items())
        print(f"best model ({best['trial_id']}, epoch {best['epoch']}): {shown}")
        for line in step_lines(best.get("per_step") or {}):
            print(line)
    for line in ensemble_lines(ensemble, run.metric):
        print(line)
    for line in baseline_lines(run.baselines(), run.metric, run.mode, rows[0]["best"] if rows else None):
        print(line)
    print(f"ms: a prediction of one input ({LATENCY_METHOD})")
    return 0


def export(args) -> int:
    from orchestrator.reading.storage import readable_run
    from orchestrator.running.best_model import EnsembleModel, export_chosen
    from orchestrator.watch.console import ensemble_lines

    out = Path(args.out)
    made, why = export_chosen(readable_run(args.run_dir), out, trial_id=args.trial, family=args.family, rule=args.pick,
                              ensemble=args.ensemble)
    if isinstance(made, EnsembleModel):
        for line in ensemble_lines(made.record, made.record["metric"]):
            print(line)
    elif made is not None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in made.metrics.items())
        print(f"{why}: trial {made.trial.trial_id} ({made.trial.family}), epoch {made.epoch}: {shown}")
    print(f"wrote {out}: {why}; load it with: from trainables import load_model; load_model('{out}')")
    return 0


def tensorboard(args) -> int:
    from orchestrator.reading.storage import readable_run
    from orchestrator.watch.tensorboard import serve

    run_dir = readable_run(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    print(f"TensorBoard on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    return serve(run_dir, args.port, args.host)


def report(args) -> int:
    from orchestrator.reading.report import write_report
    from orchestrator.reading.storage import is_uri, readable_run

    run_dir = readable_run(args.run_dir)
    default = Path(f"{run_dir.name}-report.html") if is_uri(args.run_dir) else None  # not inside a temporary copy
    out, model = write_report(run_dir, Path(args.out) if args.out else default)
    summary = model["summary"]
    print(f"wrote {out}: {summary['trials']} trial(s), {summary['state']}")
    return 0


def sample(args) -> int:
    from trainables import load_model, sample_text

    try:
        model = load_model(args.model, trust_code=args.trust_code)
        print(sample_text(model, args.prompt, args.length, temperature=args.temperature, seed=args.seed))
    except (OSError, ValueError) as exc:
        hint = "; on the command line: --trust-code" if "trust_code" in str(exc) and not args.trust_code else ""
        raise UserError(f"{args.model}: {exc}{hint}") from None
    return 0


def list_registries(args) -> int:
    from orchestrator.experiment.load import load_experiment
    from orchestrator.search.schedulers import SCHEDULERS, pairing_problem
    from orchestrator.search.searchers import SEARCHERS
    from search_spaces import BUNDLED, portfolio
    from trainables.models import registry_for
    from trainables.tasks import TASKS

    def pairs_with(record, what: str, allowed) -> str:
        return "" if allowed is None else f" (pairs with {what} {', '.join(sorted(allowed))} only)"

    sections = {
        "model families": {n: f.summary() for n, f in registry_for(load_experiment(args.experiment).space.models if args.experiment else {}).items()},
        "tasks": {n: f"{t.description}; default search space: {t.default_space}" for n, t in TASKS.items()},
        "searchers": {n: s.help + pairs_with(s, "scheduler", s.schedulers) for n, s in SEARCHERS.items()},
        "schedulers": {n: s.help + pairs_with(s, "searcher", s.searchers) for n, s in SCHEDULERS.items()},
        "valid pairings (searcher: schedulers)": {s: ", ".join(k for k in SCHEDULERS if not pairing_problem(s, k)) for s in SEARCHERS},
        "bundled search spaces": {n: str(p.name) for n, p in BUNDLED.items()},
        "warm starts (warm_start)": portfolio.choices(),
    }
    for title, entries in sections.items():
        print(f"{title}:")
        for name, text in sorted(entries.items()):
            print(f"  {name:<12} {text}")
    return 0
