"""What Tune's saved experiment state (`experiment_state-*.json`) says of a run's trials: the status it holds for each,
and which are unfinished (what `resume` continues). Read through `orchestrator.reading.results`."""

from __future__ import annotations

import json
import re
from pathlib import Path


def unfinished_trials(run_dir: Path) -> list[str]:
    """Trial ids that Tune's latest saved experiment state holds as not finished (what `resume` would continue).

    After Ctrl-C, Tune stops its trials in memory but saves them as RUNNING, so the file, not the
    in-memory ResultGrid, tells an interrupted search from a finished one.
    """
    return [trial_id for trial_id, status in saved_statuses(run_dir).items() if status in ("PENDING", "RUNNING", "PAUSED")]


def saved_statuses(run_dir: Path, *, every_session: bool = False) -> dict[str, str]:
    """{trial id: Tune's status (PENDING, RUNNING, PAUSED, TERMINATED, ERROR)} in the latest saved experiment state.

    every_session: also the trials of earlier sessions' states that the latest does not hold (an extended
    run's earlier trials: a trial a scheduler stopped while it was paused has no final result to say so).
    """
    # By name, which carries the session's start time: Tune's final sync rewrites every state file at once,
    # so their modification times cannot tell the latest session.
    states = sorted(Path(run_dir).glob("experiment_state-*.json"))
    found: dict[str, str] = {}
    for path in states if every_session else states[-1:]:
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # being rewritten by a running search: no status is known yet
        # A later session's status wins.
        found.update(dict(_id_and_status(trial_json) for trial_json, _ in state.get("trial_data", [])))
    return found


# Tune writes each trial's state as indented JSON of several kilobytes (its pickled storage context among them): the
# two top-level keys read here are found by their indentation, which is ~20x faster than parsing all of it (a run of
# 2,000 trials saves 40 MB); a trial written otherwise is parsed.
TOP_LEVEL = re.compile(r'^  "(trial_id|status)": "([^"]*)"', re.M)


def _id_and_status(trial_json: str) -> tuple[str | None, str | None]:
    keys = dict(TOP_LEVEL.findall(trial_json))
    if len(keys) < 2:
        trial = json.loads(trial_json)
        return trial.get("trial_id"), trial.get("status")
    return keys["trial_id"], keys["status"]
