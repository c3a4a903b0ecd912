"""The orchestrator contender: the workload as an experiment file, run through the real `orchestrator run`.

Nothing is reimplemented here: the command line's own entry point runs in this process (load data, start
Ray, tune, export the best model), and the figures are read back from the run directory it wrote.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.workload import (
    METRIC,
    TrialFigures,
    Workload,
    best_so_far,
    experiment,
    figures,
)


def run(w: Workload, workdir: Path) -> dict[str, Any]:
    began, began_wall = time.perf_counter(), time.time()
    import yaml

    from orchestrator.cli import main
    from orchestrator.reading import results as R

    file = workdir / "experiment.yaml"
    file.write_text(yaml.safe_dump(experiment(w, str(workdir / "runs")), sort_keys=False))
    rc = main(["run", str(file), "--name", "bench"])
    wall = time.perf_counter() - began
    if rc != 0:
        raise RuntimeError(f"orchestrator run exited with {rc}")
    loaded = R.load_trials(workdir / "runs" / "bench")
    trials = [TrialFigures.from_rows(t.rows, finished=t.error is None) for t in loaded]
    # Each epoch's exact end (the trainable's `timestamp`), from the moment this contender started.
    curve = best_so_far([(r["timestamp"] - began_wall, r.get(METRIC)) for t in loaded for r in t.rows])
    return figures(trials, wall, w.concurrent, curve)
