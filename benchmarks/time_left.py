"""How true the progress line's time left is: runs a command (an `orchestrator run`), stamps each line it prints
with the seconds since the start, and compares every `~m:ss left` (a range, or "under 0:10 left") printed after the first third of the
run with the time that was actually left until the summary ("Done in"). A range counts when it holds the truth,
a single figure when it is within 30% of it (the acceptance of the honest-answers issue).

    python -m benchmarks.time_left [--log FILE] -- orchestrator run experiment.yaml

Prints a line per estimate (`MISS` where it is off) and the count within 30%; `--log` keeps the stamped output.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

LEFT = re.compile(r"(?:~|(under) )(\d+):(\d\d)(?:-(\d+):(\d\d))? left")
TOLERANCE = 0.3


def score(lines: list[tuple[float, str]]) -> list[tuple[float, float, float, float, bool]]:
    """(when, low, high, actual, within) for each estimate printed after the first third of the run; `lines` are
    (seconds since the start, text). The run ends at its summary's first line."""
    done = next((t for t, line in lines if line.startswith("Done in")), None)
    if done is None:
        raise SystemExit("no summary ('Done in') in the output: the run did not finish")
    rows = []
    for t, line in lines:
        found = LEFT.search(line)
        if not found or t < done / 3:
            continue
        said = int(found[2]) * 60 + int(found[3])
        low, high = (0, said) if found[1] else (said, int(found[4]) * 60 + int(found[5]) if found[4] else said)
        actual = done - t
        within = low <= actual <= high if high > low else abs(low - actual) <= TOLERANCE * actual
        rows.append((t, float(low), float(high), actual, within))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", help="where to keep the command's output, each line stamped")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
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
    rows = score(lines)
    for t, low, high, actual, within in rows:
        said = f"{low:.0f}" + (f"-{high:.0f}" if high > low else "")
        print(f"at {t:6.1f} s: {said} s left said, {actual:.1f} s left{'' if within else '  MISS'}")
    ended = next(t for t, line in lines if line.startswith("Done in"))
    print(f"summary at {ended:.1f} s; within 30%: {sum(r[4] for r in rows)} of {len(rows)} estimates after the first third")
    return 0


if __name__ == "__main__":
    sys.exit(main())
