"""The comparison harness: the same search through the orchestrator, a plain Ray Tune script and Optuna.

    python -m benchmarks.harness --size cpu --repeat 3
    python -m benchmarks.harness --size big --mb 28 --budget 3m    # a large corpus, the same time for each (big_race.py)

Each contender runs in a subprocess of its own (a fresh Ray each, nothing shared), the runs of the
contenders interleave (A B C A B C ...) so that a machine slowing down hurts all alike, and wall time is
taken around the whole search, imports and Ray start included. The table (medians over repeats, with
the spread of wall times) is printed and written to `<out>/<size>-<work>.md` and `.json`.

Figures: wall time; trials finished; epochs run; Σ training-step time (the `epoch_time_s` every epoch
reports: time inside the training steps only); busy fraction = Σ step time / (wall × concurrent slots);
wall time not training = wall − Σ step time / slots (start-up, between trials and epochs, shut-down: what
orchestration costs);
trials per hour; wall seconds per epoch run (comparable across contenders whose schedulers stopped a
different number of epochs); the best validation metric; and each ratio between contenders.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.workload import METRIC, SIZES, Workload, median, time_to_reach

CONTENDERS = {"orchestrator": "benchmarks.ours", "plain": "benchmarks.plain_tune", "optuna": "benchmarks.optuna_baseline"}
TITLES = {"orchestrator": "orchestrator", "plain": "plain Ray Tune", "optuna": "Optuna"}
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# (key, label, format) of every row of the table, in order.
ROWS = [
    ("wall_s", "wall time (s)", "{:.1f}"),
    ("trials_finished", "trials finished", "{:g}"),
    ("epochs", "epochs run", "{:g}"),
    ("step_s", "Σ training-step time (s)", "{:.1f}"),
    ("slots", "concurrent slots", "{:g}"),
    ("busy", "busy fraction", "{:.2f}"),
    ("idle_s", "wall time not training (s)", "{:.1f}"),
    ("trials_per_hour", "trials per hour", "{:.0f}"),
    ("wall_per_epoch_s", "wall per epoch run (s)", "{:.2f}"),
    ("best", f"best {METRIC}", "{:.4f}"),
]
PAIRS = [("orchestrator", "plain"), ("orchestrator", "optuna"), ("plain", "optuna")]


def machine() -> dict[str, Any]:
    """Where the figures came from: CPU model and count, GPU if any, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("torch", "ray", "optuna", "hyperopt"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    gpu = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        gpu = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "gpu": gpu, "python": platform.python_version(), "os": platform.platform(), **versions}


def child(name: str, w: Workload, json_path: Path) -> None:
    """Runs one contender in this (fresh) process and writes its figures to `json_path`."""
    module = importlib.import_module(CONTENDERS[name])
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as workdir:
        result = module.run(w, Path(workdir))
    json_path.write_text(json.dumps(result))


def run_child(name: str, w: Workload, logs: Path, index: int, timeout: float) -> dict[str, Any]:
    """One contender run in a subprocess; its output goes to a log file (Ray and Tune are chatty)."""
    json_path = logs / f"{name}-{index}.json"
    log_path = logs / f"{name}-{index}.log"
    cmd = [sys.executable, "-m", "benchmarks.harness", "--child", name, "--size", w.name, "--work", w.work,
           "--seed", str(w.seed), "--json", str(json_path)]
    began, load = time.perf_counter(), os.getloadavg()[0]
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0 or not json_path.is_file():
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{name} run {index} failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")
    result = json.loads(json_path.read_text())
    result["process_s"] = time.perf_counter() - began  # the whole subprocess, interpreter start and Ray shutdown included
    # The 1-minute load average before and after: other work on the machine shows up here, not in the figures.
    result["load_before"], result["load_after"] = load, os.getloadavg()[0]
    return result


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median of every figure over the repeats, with the min and max wall time."""
    out = {}
    for name, results in runs.items():
        out[name] = {key: median([r[key] for r in results]) for key, _, _ in ROWS}
        walls = [r["wall_s"] for r in results]
        loads = [v for r in results for v in (r.get("load_before"), r.get("load_after")) if v is not None]
        epochs = [r["epochs"] for r in results]
        out[name].update(wall_min=min(walls), wall_max=max(walls), epochs_min=min(epochs), epochs_max=max(epochs), repeats=len(results),
                         load_min=min(loads, default=float("nan")), load_max=max(loads, default=float("nan")))
    return out


def ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or b == 0 or a != a or b != b:
        return None
    return a / b


def table(summary: dict[str, dict[str, Any]]) -> str:
    """The comparison as a Markdown table: one row per figure, a column per contender, then the ratios."""
    names = [n for n in CONTENDERS if n in summary]
    pairs = [p for p in PAIRS if p[0] in summary and p[1] in summary]
    head = ["figure", *(TITLES[n] for n in names), *(f"{TITLES[a]} / {TITLES[b]}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, fmt in ROWS:
        cells = [label]
        for n in names:
            v = summary[n][key]
            cells.append("-" if v is None or v != v else fmt.format(v))
        for a, b in pairs:
            r = ratio(summary[a][key], summary[b][key])
            cells.append("-" if r is None else f"{r:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    spread = ", ".join(f"{TITLES[n]} {summary[n]['wall_min']:.1f}–{summary[n]['wall_max']:.1f} s" for n in names)
    repeats = max(summary[n]["repeats"] for n in names)
    lines.append("")
    lines.append(f"Medians over {repeats} run(s) of each contender; wall time min–max: {spread}.")
    varied = [n for n in names if summary[n].get("epochs_min", 0) != summary[n].get("epochs_max", 0)]
    if varied:
        # With trials running at once, ASHA's and TPE's decisions depend on which trial reports first, so repeats of
        # one search can spend different epochs; each figure's median may then come from a different repeat.
        ranges = ", ".join(f"{TITLES[n]} {summary[n]['epochs_min']:.0f}–{summary[n]['epochs_max']:.0f}" for n in varied)
        lines.append(f"Epochs run differed between repeats (the order in which concurrent trials report steers the search): {ranges}.")
    if "orchestrator" in summary and "plain" in summary:
        ours, plain = summary["orchestrator"], summary["plain"]
        floor, idle = ours["step_s"] / ours["slots"], ratio(ours["idle_s"], plain["idle_s"])
        lines.append(f"Training alone (Σ step time ÷ slots) takes the orchestrator {floor:.1f} s: with no time lost at all its wall "
                     f"time would be {floor / plain['wall_s']:.2f} × plain Ray Tune's; it lost {ours['idle_s']:.1f} s to "
                     f"orchestration against plain Ray Tune's {plain['idle_s']:.1f} s" + (f" ({idle:.2f} ×)." if idle is not None else "."))
    loads = [v for n in names for v in (summary[n]["load_min"], summary[n]["load_max"]) if v == v]
    if loads:
        lines.append(f"1-minute load average around the runs: {min(loads):.1f}–{max(loads):.1f} (other work on the machine).")
    return "\n".join(lines)


def best_at(curve: list[list[float]], t: float) -> float | None:
    """A best-so-far curve's value at `t` seconds (None before its first result)."""
    seen = [best for when, best in curve if when <= t]
    return seen[-1] if seen else None


def race(runs: dict[str, list[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """Each contender's best-so-far against wall time, and the time it took to reach Optuna's final best as a
    fraction of Optuna's whole search (repeat i against Optuna's repeat i; medians over repeats)."""
    if "optuna" not in runs or not all(r.get("curve") for rs in runs.values() for r in rs):
        return "", {}
    names = [n for n in CONTENDERS if n in runs]
    marks = (0.25, 0.5, 0.75, 1.0)
    lines = ["", f"Best {METRIC} so far against wall time, at fractions of Optuna's whole search (medians over repeats; - : no result yet):",
             "", "| contender | " + " | ".join(f"{m:.0%}" for m in marks) + " | at its own end |", "|---|" + "---|" * (len(marks) + 1)]
    record: dict[str, Any] = {}
    for name in names:
        cells = []
        for m in marks:
            values = [best_at(r["curve"], m * o["wall_s"]) for r, o in zip(runs[name], runs["optuna"])]
            known = [v for v in values if v is not None]
            cells.append(f"{median(known):.4f}" if len(known) * 2 > len(values) else "-")
        cells.append(f"{median([r['best'] for r in runs[name]]):.4f}")
        lines.append(f"| {TITLES[name]} | " + " | ".join(cells) + " |")
    for name in names:
        if name == "optuna":
            continue
        fractions = [time_to_reach(r["curve"], o["best"]) / o["wall_s"] for r, o in zip(runs[name], runs["optuna"])]
        record[name] = [None if f == float("inf") else f for f in fractions]  # strict JSON: never reached is null
        shown = ", ".join("never" if f == float("inf") else f"{f:.2f}" for f in fractions)
        med = median(fractions)
        verdict = "never (median run)" if med == float("inf") else f"{med:.2f} of Optuna's whole search"
        lines.append(f"Time for {TITLES[name]} to reach Optuna's final best {METRIC}: {verdict} (repeats: {shown}).")
    return "\n".join(lines), record


def describe(w: Workload, info: dict[str, Any]) -> str:
    work = (
        f"HyperOpt/TPE ({w.num_trials} trials) + ASHA (max {w.max_epochs} epochs, grace {w.grace_period}, ×{w.reduction_factor})"
        if w.work == "search"
        else f"{w.num_trials} identical pre-sampled configs, each {w.max_epochs} epochs, no early stopping"
    )
    gpu = f", {info['gpu']}" if info.get("gpu") else ", no GPU"
    return (
        f"Size `{w.name}`, work `{w.work}`: {work}; charlm LSTM space, {w.max_chars} characters, seq_len {w.seq_len}, "
        f"seed {w.seed}; Ray contenders run {w.concurrent} (orchestrator) / {w.plain_concurrent} (plain) trials at once.\n"
        f"Machine: {info['cpu']}, {info['cpus']} CPUs{gpu}; Python {info['python']}, torch {info['torch']}, "
        f"ray {info['ray']}, optuna {info['optuna']}, hyperopt {info['hyperopt']}."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted([*SIZES, "big"]), default="cpu")
    p.add_argument("--work", choices=["search", "fixed"], default="search",
                   help="search: TPE + ASHA; fixed: the same configs, every one to max_epochs (identical work)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each contender (medians are reported)")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset of: " + ", ".join(CONTENDERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS_DIR), help="folder for the .md and .json results")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per contender run")
    big = p.add_argument_group("--size big: the same text file and the same wall-clock budget for each (benchmarks/big_race.py)")
    big.add_argument("--corpus", help="the text file (default: one generated by benchmarks.big_corpus, --mb MB)")
    big.add_argument("--mb", type=float, default=28.0, help="size of the generated corpus in MB")
    big.add_argument("--budget", default="3m", help="each contender's wall-clock budget (90s, 3m)")
    big.add_argument("--epoch-steps", type=int, help="cap the plain scripts' epochs at this many steps (default: whole passes)")
    p.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.size == "big":
        from benchmarks.big_race import race as big_race
        from orchestrator.search.budget import parse_duration

        names = [n.strip() for n in args.contenders.split(",") if n.strip()]
        info = machine()
        return big_race(args.corpus, args.mb, parse_duration(args.budget), args.epoch_steps, args.repeat, names, Path(args.out),
                    describe=f"Machine: {info['cpu']}, {info['cpus']} CPUs; Python {info['python']}, torch {info['torch']}, "
                             f"ray {info['ray']}, optuna {info['optuna']}, hyperopt {info['hyperopt']}.")
    w = SIZES[args.size].with_(work=args.work, seed=args.seed)
    if args.child:
        child(args.child, w, Path(args.json))
        return 0
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown or not names:
        p.error(f"--contenders: unknown '{unknown[0] if unknown else ''}'; known: {', '.join(CONTENDERS)}")
    info = machine()
    if w.gpu_per_trial and not info["gpu"]:
        p.error(f"--size {w.name} trains on a GPU, and nvidia-smi finds none on this machine; use --size cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
        for i in range(args.repeat):
            for name in names:
                print(f"[{i + 1}/{args.repeat}] {TITLES[name]} ...", end=" ", flush=True)
                try:
                    result = run_child(name, w, Path(logs), i, args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"\nerror: {exc}", file=sys.stderr)
                    return 1
                runs[name].append(result)
                print(f"{result['wall_s']:.1f} s, {result['epochs']} epochs, busy {result['busy']:.2f} "
                      f"(load average {result['load_before']:.1f} -> {result['load_after']:.1f})", flush=True)
    summary = summarize(runs)
    raced, reach = race(runs)
    text = f"{describe(w, info)}\n\n{table(summary)}\n{raced}\n"
    print("\n" + text)
    stem = out / f"{w.name}-{w.work}"
    stem.with_suffix(".md").write_text(text)
    record = {"workload": w.__dict__, "machine": info, "summary": summary, "time_to_optunas_best": reach, "runs": runs,
              "generated": time.strftime("%Y-%m-%d %H:%M:%S")}
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
