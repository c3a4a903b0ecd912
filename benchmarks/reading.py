"""How fast a large run is read: `orchestrator report`, `orchestrator best` and `load_run(RUN).dataframe()`.

    python -m benchmarks.reading                   # 2,000 one-epoch trials and 330 trials of up to 27 epochs, 3 repeats
    python -m benchmarks.reading --shape deep --repeat 1
    python -m benchmarks.reading --source OTHER_CHECKOUT   # the same, through another checkout's code (a before/after)

The runs are simulated in the real on-disk format by `benchmarks/large_run.py` (written once into a temporary
directory, or `--runs DIR` to keep and reuse them). Each command runs in a fresh interpreter, as a user's would,
imports included; the table gives the median wall time and the median CPU time (user + system) of the
process, which a busy machine inflates less than wall time, and the 1-minute load average around the runs.
Printed, and written to `<out>/reading.md` and `.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.large_run import SHAPES, write_large_run
from benchmarks.workload import median

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
DATAFRAME = "import sys, orchestrator; print(len(orchestrator.load_run(sys.argv[1]).dataframe()))"


def commands(run: Path, out: Path) -> dict[str, list[str]]:
    """What is timed, by name: each a command line run in a fresh interpreter."""
    py = sys.executable
    return {
        "report": [py, "-m", "orchestrator", "report", str(run), "--out", str(out / f"{run.name}.html")],
        "best": [py, "-m", "orchestrator", "best", str(run)],
        "dataframe": [py, "-c", DATAFRAME, str(run)],
    }


def timed(argv: list[str], source: Path) -> dict[str, float]:
    """Runs one command to its end (a failure raises); its wall time and the CPU time its process used."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(source), os.environ.get("PYTHONPATH")) if p))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=source, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "load": os.getloadavg()[0]}


def measure(shapes: list[str], repeat: int, runs: Path, source: Path) -> list[dict[str, Any]]:
    """Every command over every shape's run, `repeat` times (the commands interleaved: a slowing machine hurts all)."""
    records = []
    for shape in shapes:
        run = runs / f"large-{shape}"
        if not run.is_dir():
            write_large_run(runs, shape)
        cmds = commands(run, runs)
        times: dict[str, list[dict[str, float]]] = {name: [] for name in cmds}
        for _ in range(repeat):
            for name, argv in cmds.items():
                times[name].append(timed(argv, source))
        size = (runs / f"{run.name}.html").stat().st_size
        for name, found in times.items():
            records.append({"shape": shape, "trials": SHAPES[shape].trials, "max_epochs": SHAPES[shape].max_epochs, "command": name,
                            "wall_s": median([t["wall_s"] for t in found]), "cpu_s": median([t["cpu_s"] for t in found]),
                            "runs": found, "report_bytes": size if name == "report" else None})
    return records


def table(records: list[dict[str, Any]]) -> str:
    lines = ["| run | command | wall time (s), median | CPU time (s), median | load average (1 min) |", "|---|---|---|---|---|"]
    for r in records:
        loads = [t["load"] for t in r["runs"]]
        what = f"{r['trials']} trials, up to {r['max_epochs']} epoch{'s' if r['max_epochs'] > 1 else ''}"
        size = f" ({r['report_bytes'] / 1e6:.1f} MB page)" if r["report_bytes"] else ""
        lines.append(f"| {what} | {r['command']}{size} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {min(loads):.1f}–{max(loads):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="which simulated run (default: both)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=Path, default=None, help="where the simulated runs are written and reused (default: a temporary directory)")
    parser.add_argument("--source", type=Path, default=REPO, help="the checkout whose code reads the runs (default: this one)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default="", help="a suffix of the result files' names (reading-<tag>.md)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reading-") as tmp:
        runs = args.runs or Path(tmp)
        runs.mkdir(parents=True, exist_ok=True)
        records = measure(args.shape or ["wide", "deep"], args.repeat, runs, args.source.resolve())
    text = table(records)
    print(text)
    name = "reading" + (f"-{args.tag}" if args.tag else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(text + "\n")
    meta = {"python": platform.python_version(), "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "repeat": args.repeat, "measured": time.strftime("%Y-%m-%d")}
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
