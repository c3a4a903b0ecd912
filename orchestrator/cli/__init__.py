"""The `orchestrator` command line: parses arguments and calls one function per command; nothing more.

Exit status: 0 success; 2 bad input (one `error:` line on stderr, nothing written); 1 a failure while running.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from orchestrator.cli import read_commands as commands
from orchestrator.errors import UserError

STARTED = time.monotonic()  # when the command began: a `--budget` counts from here


def _experiment(args):
    """The experiment a `run` or `validate` command names: its file, or the one `--data` implies."""
    from orchestrator.experiment.from_data import load_for_command

    return load_for_command(args.experiment, args.set, data=args.data, target=args.target, forecast=args.forecast,
                            budget=args.budget, name=getattr(args, "name", None), storage=getattr(args, "storage", None),
                            say=sys.stderr if args.print_config else sys.stdout, horizon=args.horizon)


def _print_config(exp) -> int:
    """`--print-config`: the experiment as a YAML file that runs the same search."""
    import yaml

    config = exp.config.model_dump(mode="json", exclude_defaults=True)
    config["task"] = {"kind": config["task"].pop("kind", exp.config.task.kind), **config["task"]}  # kind first: it says what the rest means
    print(yaml.safe_dump(config, sort_keys=False), end="")
    return 0


def _run(args) -> int:
    from orchestrator.running.runner import run

    exp = _experiment(args)
    if args.print_config:
        return _print_config(exp)
    return run(exp, address=args.address, explicit_name=args.name is not None, started=STARTED)


def _validate(args) -> int:
    from orchestrator.running.prepare import prepare

    exp = _experiment(args)
    if args.print_config:
        return _print_config(exp)
    p = prepare(exp)
    for warning in p.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    c = p.exp.config
    taken = "" if c.search_space is not None else " (the task's default: set `search_space` to choose another)"
    print(f"{p.exp.where}: valid. {p.data.summary()}; search space {p.exp.space.source}{taken}: "
          f"{len(p.exp.space.families)} famil{'y' if len(p.exp.space.families) == 1 else 'ies'} ({', '.join(p.exp.space.families)}); "
          f"optimizing {p.metric} ({p.mode}) with {c.searcher} + {c.scheduler.kind}")
    return 0


def _resume(args) -> int:
    from orchestrator.running.runner import resume

    return resume(args.run_dir, address=args.address)


def _extend(args) -> int:
    from orchestrator.running.extend import extend

    return extend(args.run_dir, args.trials, address=args.address)


def _submit(args) -> int:
    from orchestrator.running.jobs import submit

    return submit(args)


RUN_HELP = "a run directory (<storage>/<name>), or the URI of a run stored in the cloud (s3://BUCKET/runs/NAME)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orchestrator", description="Ray Tune model and hyperparameter search for PyTorch models: RNN/LSTM/GRU/Transformer/MLP or your own.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def experiment_args(c, optional=True):
        c.add_argument("experiment", nargs="?" if optional else None, help="experiment YAML (default: the built-in quickstart)")
        c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any key, e.g. --set scheduler.max_epochs=5")

    def data_args(c):
        c.add_argument("--data", metavar="FILE", help="your data, no experiment file needed: a text file, a CSV (with --target or "
                       "--forecast) or FILE.py:function (a loader); the task is inferred and printed")
        c.add_argument("--target", metavar="COL", help="with a CSV: classify or regress this column")
        c.add_argument("--forecast", metavar="COL[,COL]", help="with a CSV: forecast these series")
        c.add_argument("--horizon", type=int, metavar="H", help="with --forecast: forecast the next H steps, jointly (default 1)")
        c.add_argument("--budget", metavar="DURATION", help="plan the search to end within this (90s, 10m, 2h)")
        c.add_argument("--print-config", action="store_true", help="print the experiment YAML this would run, and stop")

    c = sub.add_parser("run", help="run an experiment (with no file: the built-in quickstart)")
    experiment_args(c)
    data_args(c)
    c.add_argument("--name", help="run name (directory under storage)")
    c.add_argument("--storage", help="storage directory or URI for results")
    c.add_argument("--address", help="Ray cluster to use (auto, HOST:PORT); default: a local in-process Ray")
    c.set_defaults(func=_run)

    c = sub.add_parser("validate", help="check an experiment (config, space, data) without running anything")
    experiment_args(c)
    data_args(c)
    c.set_defaults(func=_validate)

    c = sub.add_parser("resume", help="continue an interrupted experiment")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--address", help="Ray cluster to use; default: a local in-process Ray")
    c.set_defaults(func=_resume)

    c = sub.add_parser("extend", help="add trials to a finished (or interrupted) search; the searcher learns every earlier trial")
    c.add_argument("run_dir", help="a run directory (<storage>/<name>)")
    c.add_argument("--trials", type=int, required=True, metavar="N", help="how many trials to add")
    c.add_argument("--address", help="Ray cluster to use; default: a local in-process Ray")
    c.set_defaults(func=_extend)

    c = sub.add_parser("best", help="the leaderboard of a run")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--top", type=int, default=10)
    c.add_argument("--json", action="store_true")
    c.add_argument("--pareto", action="store_true", help="only the Pareto front: the trials no other beats in the metric, "
                   "the parameter count and the latency at once")
    c.set_defaults(func=commands.best)

    c = sub.add_parser("export", help="write a model of a run to a file: the best, a chosen trial's, or an ensemble")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--out", required=True)
    which = c.add_mutually_exclusive_group()
    which.add_argument("--trial", metavar="ID", help="this trial's best checkpoint (ids as `orchestrator best` lists them)")
    which.add_argument("--family", metavar="NAME", help="the best trial of this model family")
    which.add_argument("--pick", metavar="RULE", help="'smallest within X%%' or 'fastest within X%%' of the best value")
    which.add_argument("--ensemble", type=int, metavar="K", help="a weighted ensemble of up to K of the top trials "
                       "(greedy ensemble selection on validation)")
    c.set_defaults(func=commands.export)

    c = sub.add_parser("tensorboard", help="serve TensorBoard over a run (127.0.0.1)")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--port", type=int, default=6006)
    c.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 exposes it)")
    c.set_defaults(func=commands.tensorboard)

    c = sub.add_parser("report", help="a self-contained HTML report of a run (also while it runs)")
    c.add_argument("run_dir", help=RUN_HELP)
    c.add_argument("--out", help="where to write it (default: RUN_DIR/report.html)")
    c.set_defaults(func=commands.report)

    c = sub.add_parser("sample", help="generate text from an exported charlm model")
    c.add_argument("model")
    c.add_argument("--prompt", default="The ")
    c.add_argument("--length", type=int, default=300)
    c.add_argument("--temperature", type=float, default=0.8)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--trust-code", action="store_true", help="a model of your own class: import the module it names (runs its code)")
    c.set_defaults(func=commands.sample)

    c = sub.add_parser("submit", help="run an experiment as a Ray Job on a cluster")
    experiment_args(c, optional=False)
    c.add_argument("--address", required=True, help="Ray dashboard address, e.g. http://127.0.0.1:8265")
    c.add_argument("--name", help="run name")
    c.add_argument("--storage", help="storage every node can reach (s3://..., gs://..., or a shared mount)")
    c.add_argument("--no-wait", action="store_true", help="print the job id and return")
    c.set_defaults(func=_submit)

    c = sub.add_parser("list", help="model families, tasks, searchers, schedulers, bundled search spaces, warm starts")
    c.add_argument("experiment", nargs="?", help="an experiment YAML: its own model families (`model: file.py:Class`) are listed too")
    c.set_defaults(func=commands.list_registries)
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
    # The command has ended and `rc` is its status: a Ctrl-C while Ray shuts down must not turn it into a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
