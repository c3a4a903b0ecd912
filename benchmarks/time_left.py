"""How true the progress line's time left is: runs a command (an `orchestrator run`), stamps each line it prints
with the seconds since the start, and compares every `~m:ss left` (a range, or "under 0:10 left") printed after the first third of the
run with the time that was actually left until the summary ("Done in"). A range counts when it holds the truth,
a single figure when it is within 30% of it (the acceptance of the honest-answers issue).

    python -m benchmarks.time_left [--log FILE] -- orchestrator run experiment.yaml
    python -m benchmarks.time_left --replay RUN_DIR [--workers 2] [--every 5]

Prints a line per estimate (`MISS` where it is off) and the count within 30%; `--log` keeps the stamped output.
`--replay` needs no new run: it feeds a finished run's results, in the order their epochs ended, to the progress
view's own estimator, and asks it for the time left every `--every` seconds (the run's end: its last epoch and the
seconds the estimator counts for the export, `END_S`), so that a change to the estimator can be tried on recorded
runs in seconds. The worker-seconds held are then the workers times the wall time, and a trial is paused where
its next epoch had not begun (a run directory does not record which trials Tune had running at each step).
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import time
from pathlib import Path

LEFT = re.compile(r"(?:~|(under) )(\d+):(\d\d)(?:-(\d+):(\d\d))? left")
TOLERANCE = 0.3


def within(low: float, high: float, actual: float) -> bool:
    """A range holds the time left; a single figure is within 30% of it."""
    return low <= actual <= high if high > low else abs(low - actual) <= TOLERANCE * actual


def said(line: str) -> tuple[float, float] | None:
    """(low, high) seconds of the time left a line says (`~m:ss left`, a range, or "under 0:10 left"), or None."""
    found = LEFT.search(line)
    if not found:
        return None
    seconds = int(found[2]) * 60 + int(found[3])
    if found[1]:
        return 0.0, float(seconds)
    return float(seconds), float(int(found[4]) * 60 + int(found[5]) if found[4] else seconds)


def score(lines: list[tuple[float, str]]) -> list[tuple[float, float, float, float, bool]]:
    """(when, low, high, actual, within) for each estimate printed after the first third of the run; `lines` are
    (seconds since the start, text). The run ends at its summary's first line."""
    done = next((t for t, line in lines if line.startswith("Done in")), None)
    if done is None:
        raise SystemExit("no summary ('Done in') in the output: the run did not finish")
    rows = []
    for t, line in lines:
        if (left := said(line)) is None or t < done / 3:
            continue
        rows.append((t, *left, done - t, within(*left, done - t)))
    return rows


def replay(run_dir: str | Path, workers: int = 2, every: float = 5.0) -> list[tuple[float, float, float, float, bool]]:
    """(when, low, high, actual, within) for the estimates the progress view would have printed after the first
    third of a finished run, every `every` seconds of its results' time."""
    from orchestrator.reading.results import load_trials, read_experiment
    from orchestrator.watch.eta import END_S
    from orchestrator.watch.progress import Progress
    from trainables.rows import epoch_began

    experiment, trials = read_experiment(Path(run_dir)), load_trials(Path(run_dir))
    scheduler = experiment["scheduler"]
    events = sorted(((row["timestamp"], trial, row) for trial in trials for row in trial.rows if "timestamp" in row),
                    key=lambda event: event[0])
    if not events:
        raise SystemExit(f"{run_dir}: no trial reported an epoch")
    view = Progress(experiment["metric"], experiment["mode"], experiment["num_samples"], scheduler["max_epochs"],
                    out=io.StringIO(), scheduler=(scheduler["kind"], scheduler), workers=experiment.get("max_concurrent") or workers)
    view.setup()
    # Tune tells the live view when a trial starts, and which trials are paused at a rung; here, when each epoch
    # began stands for that: a trial whose next epoch has not begun is paused.
    begun = {trial.trial_id: [epoch_began(row) for row in trial.rows if "timestamp" in row] for trial in trials}
    starts = sorted((epoch_began(trial.rows[0]), i) for i, trial in enumerate(trials) if trial.rows and "timestamp" in trial.rows[0])
    start = events[0][0] - float(events[0][2].get("time_this_iter_s") or 0.0)
    end = events[-1][0] + END_S
    rows, fed, t = [], 0, start + every
    while t < events[-1][0]:
        while starts and starts[0][0] <= t:
            began, i = starts.pop(0)
            view.on_trial_start(0, [], trials[i])
            view.starting[trials[i].trial_id] = began
        while fed < len(events) and events[fed][0] <= t:
            _, trial, row = events[fed]
            view.on_trial_result(0, [], trial, row)
            if row.get("training_iteration", 0) >= scheduler["max_epochs"]:
                view.on_trial_complete(0, [], trial)
            fed += 1
        view.paused = {tid for tid, epoch in view.at.items()
                       if epoch < scheduler["max_epochs"] and (epoch >= len(begun[tid]) or begun[tid][epoch] > t)}
        view.resumed.update({tid: begun[tid][epoch] for tid, epoch in view.at.items() if tid not in view.paused and epoch < len(begun[tid])})
        left = said(view.left_said(now=t) or "")  # as the status line says it
        if left is not None and t - start >= (end - start) / 3:
            rows.append((t - start, *left, end - t, within(*left, end - t)))
        t += every
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", help="where to keep the command's output, each line stamped")
    parser.add_argument("--replay", metavar="RUN_DIR", help="a finished run's results fed to the estimator, instead of a command")
    parser.add_argument("--workers", type=int, default=2, help="with --replay: the trials that ran at once, where the run "
                        "did not set max_concurrent (default 2)")
    parser.add_argument("--every", type=float, default=5.0, help="with --replay: seconds between estimates (default 5)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    if args.replay:
        show(replay(args.replay, args.workers, args.every), "replayed")
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to time after --")
    began = time.monotonic()
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append((time.monotonic() - began, line.rstrip()))
    if args.log:
        with open(args.log, "w") as out:
            out.writelines(f"{t:7.1f} {line}\n" for t, line in lines)
    if proc.returncode != 0:
        print(f"the command exited {proc.returncode}", file=sys.stderr)
        return proc.returncode
    ended = next((t for t, line in lines if line.startswith("Done in")), None)
    show(score(lines), f"summary at {ended:.1f} s")
    return 0


def show(rows: list[tuple[float, float, float, float, bool]], what: str) -> None:
    for t, low, high, actual, ok in rows:
        said = f"{low:.0f}" + (f"-{high:.0f}" if high > low else "")
        print(f"at {t:6.1f} s: {said} s left said, {actual:.1f} s left{'' if ok else '  MISS'}")
    print(f"{what}; within 30%: {sum(r[4] for r in rows)} of {len(rows)} estimates after the first third")


if __name__ == "__main__":
    sys.exit(main())
