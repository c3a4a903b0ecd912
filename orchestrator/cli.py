"""The `orchestrator` command line: parses arguments and calls one function per command; nothing more.

Exit status: 0 success; 2 bad input (one `error:` line on stderr, nothing written); 1 a failure while running.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from orchestrator.errors import UserError


def _run(args) -> int:
    from orchestrator.config import load_experiment
    from orchestrator.runner import run

    exp = load_experiment(args.experiment, args.set, name=args.name, storage=args.storage)
    return run(exp, address=args.address, explicit_name=args.name is not None)


def _validate(args) -> int:
    from orchestrator.config import load_experiment
    from orchestrator.prepare import prepare

    p = prepare(load_experiment(args.experiment, args.set))
    c = p.exp.config
    taken = "" if c.search_space is not None else " (the task's default: set `search_space` to choose another)"
    print(f"{p.exp.file}: valid. {p.data.summary()}; search space {p.exp.space.source}{taken}: "
          f"{len(p.exp.space.families)} famil{'y' if len(p.exp.space.families) == 1 else 'ies'} ({', '.join(p.exp.space.families)}); "
          f"optimizing {p.metric} ({p.mode}) with {c.searcher} + {c.scheduler.kind}")
    return 0


def _resume(args) -> int:
    from orchestrator.runner import resume

    return resume(args.run_dir, address=args.address)


def _best(args) -> int:
    from orchestrator import results as R
    from orchestrator.console import describe
    from orchestrator.storage import readable_run

    run = R.read_run(readable_run(args.run_dir))
    trials = {t.trial_id: t for t in run.trials()}
    rows = R.leaderboard_rows(list(trials.values()), run.metric, run.mode, run.max_epochs)[: args.top]
    best = run.best_model()
    if args.json:
        shown = [{**{k: v for k, v in row.items() if k not in ("best", "hyperparameters")}, run.metric: row["best"],
                  "hyperparameters": row["hyperparameters"]} for row in rows]
        print(json.dumps({"run_dir": str(run.run_dir), "metric": run.metric, "mode": run.mode, "trials": shown, "best": best}, indent=2))
        return 0
    print(f"{run.run_dir.name}: {len(rows)} trial(s), ranked by {run.metric} ({run.mode})")
    print(f"{'#':>3}  {'trial':<10} {'status':<14} {'epochs':>6}  {run.metric:>12}  hyperparameters")
    for row in rows:
        value = f"{row['best']:.4g}" if row["best"] is not None else "-"
        print(f"{row['rank']:>3}  {row['trial_id']:<10} {row['status']:<14} {row['epochs']:>6}  {value:>12}  "
              f"{describe(trials[row['trial_id']].config)}")
    if best:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in best["metrics"].items())
        print(f"best model ({best['trial_id']}, epoch {best['epoch']}): {shown}")
    return 0


def _export(args) -> int:
    from orchestrator import results as R
    from orchestrator.storage import readable_run
    from trainables.files import atomic_write

    run = R.read_run(readable_run(args.run_dir))
    out = Path(args.out)
    existing = run.run_dir / R.BEST_DIR / R.MODEL_FILE
    if existing.is_file():
        atomic_write(out, lambda tmp: shutil.copyfile(existing, tmp))
    else:  # an interrupted run: export from its best checkpoint so far
        from orchestrator.exporting import export_best
        from orchestrator.prepare import experiment_from_run, prepare

        p = prepare(experiment_from_run(run.run_dir))
        export_best(run.run_dir, p.data, p.metric, p.mode, out_path=out)
    print(f"wrote {out}; load it with: from trainables import load_model; load_model('{out}')")
    return 0


def _tensorboard(args) -> int:
    from orchestrator.storage import readable_run
    from orchestrator.tensorboard import serve

    run_dir = readable_run(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    print(f"TensorBoard on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    return serve(run_dir, args.port, args.host)


def _report(args) -> int:
    from orchestrator.report import write_report
    from orchestrator.storage import is_uri, readable_run

    run_dir = readable_run(args.run_dir)
    default = Path(f"{run_dir.name}-report.html") if is_uri(args.run_dir) else None  # not inside a temporary copy
    out, model = write_report(run_dir, Path(args.out) if args.out else default)
    summary = model["summary"]
    print(f"wrote {out}: {summary['trials']} trial(s), {summary['state']}")
    return 0


def _sample(args) -> int:
    from trainables import load_model, sample_text

    try:
        model = load_model(args.model)
        print(sample_text(model, args.prompt, args.length, temperature=args.temperature, seed=args.seed))
    except (OSError, ValueError) as exc:
        raise UserError(f"{args.model}: {exc}") from None
    return 0


def _list(args) -> int:
    from orchestrator.schedulers import SCHEDULERS
    from orchestrator.searchers import SEARCHERS
    from search_spaces import BUNDLED
    from trainables.models import MODELS
    from trainables.tasks import TASKS

    def pairs_with(record) -> str:
        return "" if record.searchers is None else f" (pairs with searcher {', '.join(sorted(record.searchers))} only)"

    sections = {
        "model families": {n: f"{m.description}; hyperparameters: {', '.join(m.hyperparameters())}" for n, m in MODELS.items()},
        "tasks": {n: f"{t.description}; default search space: {t.default_space}" for n, t in TASKS.items()},
        "searchers": {n: s.help for n, s in SEARCHERS.items()},
        "schedulers": {n: s.help + pairs_with(s) for n, s in SCHEDULERS.items()},
        "bundled search spaces": {n: str(p.name) for n, p in BUNDLED.items()},
    }
    for title, entries in sections.items():
        print(f"{title}:")
        for name, text in sorted(entries.items()):
            print(f"  {name:<12} {text}")
    return 0


def _submit(args) -> int:
    from orchestrator.jobs import submit

    return submit(args)


RUN_HELP = "a run directory (<storage>/<name>), or the URI of a run stored in the cloud (s3://BUCKET/runs/NAME)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orchestrator", description="Ray Tune model and hyperparameter search for PyTorch RNN/LSTM/GRU/MLP models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def experiment_args(c, optional=True):
        c.add_argument("experiment", nargs="?" if optional else None, help="experiment YAML (default: the built-in quickstart)")
        c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any key, e.g. --set scheduler.max_epochs=5")

    c = sub.add_parser("run", help="run an experiment (with no file: the built-in quickstart)")
    experiment_args(c)
    c.add_argument("--name", help="run name (directory under storage)")
    c.add_argument("--storage", help="storage directory or URI for results")
    c.add_argument("--address", help="Ray cluster to use (auto, HOST:PORT); default: a local in-process Ray")
    c.set_defaults(func=_run)

    c = sub.add_parser("validate", help="check an experiment (config, space, data) without running anything")
    experiment_args(c)
    c.set_defaults(func=_validate)

    c = sub.add_parser("resume", help="continue an interrupted experiment")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--address", help="Ray cluster to use; default: a local in-process Ray")
    c.set_defaults(func=_resume)

    c = sub.add_parser("best", help="the leaderboard of a run")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--top", type=int, default=10)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_best)

    c = sub.add_parser("export", help="write the best model of a run to a file")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--out", required=True)
    c.set_defaults(func=_export)

    c = sub.add_parser("tensorboard", help="serve TensorBoard over a run (127.0.0.1)")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--port", type=int, default=6006)
    c.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 exposes it)")
    c.set_defaults(func=_tensorboard)

    c = sub.add_parser("report", help="a self-contained HTML report of a run (also while it runs)")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--out", help="where to write it (default: RUN_DIR/report.html)")
    c.set_defaults(func=_report)

    c = sub.add_parser("sample", help="generate text from an exported charlm model")
    c.add_argument("model")
    c.add_argument("--prompt", default="The ")
    c.add_argument("--length", type=int, default=300)
    c.add_argument("--temperature", type=float, default=0.8)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=_sample)

    c = sub.add_parser("submit", help="run an experiment as a Ray Job on a cluster")
    experiment_args(c, optional=False)
    c.add_argument("--address", required=True, help="Ray dashboard address, e.g. http://127.0.0.1:8265")
    c.add_argument("--name", help="run name")
    c.add_argument("--storage", help="storage every node can reach (s3://..., gs://..., or a shared mount)")
    c.add_argument("--no-wait", action="store_true", help="print the job id and return")
    c.set_defaults(func=_submit)

    c = sub.add_parser("list", help="model families, tasks, searchers, schedulers, bundled search spaces")
    c.set_defaults(func=_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`orchestrator best RUN | head`): not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> None:
    """The `orchestrator` console script (and `python -m orchestrator`): `main`, then a quick process exit.

    Python's own teardown unloads torch, Ray and TensorBoard for ~1 s after every command. By the time
    `main` returns, everything the command wrote is closed (Tune closes its loggers and our TensorBoard
    writers when the experiment ends), so the process shuts Ray down, flushes, and ends without it.
    """
    rc = main()
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()  # Ray's own processes are stopped here, as its exit hook would
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader that went away (`| head`): what it read is all it wanted
    os._exit(rc)
