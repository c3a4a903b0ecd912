"""The benchmark harness at its tiny size: it runs all three contenders and writes a well-formed table.

The figures themselves are measured, never asserted (a shared CI machine makes timings meaningless);
what is checked is that every contender ran the same search and that the table and JSON are complete.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import harness
from benchmarks.workload import SIZES, experiment, fixed_configs, search_space

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_harness_tiny_writes_a_complete_table(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.harness", "--size", "tiny", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "tiny-search.json").read_text())
    assert set(record["summary"]) == set(harness.CONTENDERS)
    for name, figures in record["summary"].items():
        for key, _, _ in harness.ROWS:
            assert key in figures, (name, key)
        assert figures["trials_finished"] == SIZES["tiny"].num_trials, name
        assert figures["epochs"] >= SIZES["tiny"].num_trials, name  # every trial trained at least one epoch
        assert figures["wall_s"] > 0 and figures["step_s"] > 0, name
        assert 0 < figures["busy"] <= 1.5, name  # a fraction; a little above 1 only by clock granularity
        assert math.isfinite(figures["best"]), name
    for key in ("cpu", "cpus", "torch", "ray", "optuna"):
        assert record["machine"][key], key

    table = (tmp_path / "tiny-search.md").read_text()
    lines = table.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = [line for line in lines[first:first + 2 + len(harness.ROWS)] if line.startswith("| ")]  # the figures' table
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header[:4] == ["figure", "orchestrator", "plain Ray Tune", "Optuna"]
    assert len(header) == 1 + len(harness.CONTENDERS) + len(harness.PAIRS)  # figures, then one ratio per pair
    body = rows[1:]
    assert [r.strip("|").split("|")[0].strip() for r in body] == [label for _, label, _ in harness.ROWS]
    for row in body:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(header)
        for cell in cells[1:]:
            assert cell == "-" or float(cell) >= 0, row
    assert "Machine:" in table and "Medians over 1 run(s)" in table
    assert "Time for orchestrator to reach Optuna's final best val_bpc" in table
    for name, figures in record["runs"].items():  # each epoch's end: times ascend and the best never worsens
        curve = figures[0]["curve"]
        assert curve and all(a[0] <= b[0] and b[1] <= a[1] for a, b in zip(curve, curve[1:])), name


def test_the_orchestrator_contender_runs_a_valid_experiment(tmp_path):
    """... with nothing run first that the other contenders would not run (no warm start)."""
    from orchestrator.experiment.config import parse_config
    from orchestrator.experiment.load import check_points, check_space

    for size in SIZES.values():
        for work in ("search", "fixed"):
            config = parse_config(experiment(size.with_(work=work), str(tmp_path)), "benchmark")
            space = check_space(config, tmp_path / "benchmark.yaml")
            assert check_points(config, space, "benchmark") == []


def test_fixed_work_is_what_the_orchestrators_random_searcher_proposes():
    """The "identical work" mode hands every contender exactly the configs the orchestrator runs."""
    from orchestrator.search.searchers import SEARCHERS

    w = SIZES["tiny"].with_(work="fixed", num_trials=5, seed=3)
    searcher = SEARCHERS["random"].build(search_space(), "val_bpc", "min", w.seed, w.num_trials)
    assert [searcher.suggest(str(i)) for i in range(w.num_trials)] == fixed_configs(w)


def test_table_says_when_repeats_ran_different_epochs():
    """Concurrent trials can steer one search down different paths; the table then shows each contender's range."""

    def run(wall: float, epochs: int) -> dict:
        return {"wall_s": wall, "trials_finished": 16, "epochs": epochs, "step_s": wall, "slots": 2, "busy": 0.5, "idle_s": wall / 2,
                "trials_per_hour": 1.0, "wall_per_epoch_s": wall / epochs, "best": 2.0, "load_before": 1.0, "load_after": 1.0}

    varied = harness.table(harness.summarize({"orchestrator": [run(50, 45), run(37, 35), run(52, 45)], "plain": [run(76, 36)] * 3}))
    assert "Epochs run differed between repeats (the order in which concurrent trials report steers the search): orchestrator 35–45." in varied
    assert "plain Ray Tune 36" not in varied
    same = harness.table(harness.summarize({"orchestrator": [run(50, 45)] * 2, "plain": [run(76, 36)] * 2}))
    assert "differed" not in same


def test_race_reports_the_time_to_reach_optunas_final_best():
    """Repeat i of each contender races Optuna's repeat i: the seconds until its best-so-far first reached
    Optuna's final best, over Optuna's whole wall time."""
    optuna = [{"wall_s": 40.0, "best": 2.0, "curve": [[10, 2.5], [30, 2.0]]}, {"wall_s": 20.0, "best": 2.2, "curve": [[5, 2.2]]}]
    ours = [{"wall_s": 30.0, "best": 1.9, "curve": [[4, 2.4], [12, 1.9]]}, {"wall_s": 30.0, "best": 2.3, "curve": [[6, 2.3]]}]
    text, record = harness.race({"orchestrator": ours, "optuna": optuna})
    assert record["orchestrator"] == [pytest.approx(12 / 40), None]  # never reached 2.2 in the second repeat
    assert "to reach Optuna's final best val_bpc: never (median run)" in text  # the median of 0.30 and never
    assert "repeats: 0.30, never" in text
    assert "| orchestrator | - | 2.1000 | 2.1000 | 2.1000 | 2.1000 |" in text  # at 25%, only one repeat had a result


@pytest.mark.slow
def test_scaling_trains_the_spaces_largest_transformer_on_one_and_two_workers(tmp_path):
    """The data-parallel scaling benchmark on CPU workers (gloo): its config is a point of the charlm space with
    every size at the top, and it measures one and two workers (the GPU figures need a GPU machine)."""
    from benchmarks.scaling import LARGEST
    from search_spaces import load_space
    from search_spaces.points import parse_point
    from trainables.trial import TrialConfig

    space = load_space("charlm")
    flat = {k: v for k, v in TrialConfig.from_tune(LARGEST).flat().items() if k != "momentum"}  # adam has none
    assert parse_point(flat, space, "LARGEST") == LARGEST
    transformer = space.families["transformer"]
    for key in ("d_model", "num_heads", "ff_mult"):
        assert flat[f"model/{key}"] == max(transformer[key].options), key
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scaling", "--workers", "1,2", "--epochs", "2", "--steps", "3", "--max-chars", "20000",
         "--seq-len", "32", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "scaling-cpu.json").read_text())
    assert [r["workers"] for r in record["runs"]] == [1, 2]
    assert all(r["samples_per_s"] > 0 and r["device"] == "cpu" for r in record["runs"])
    assert "| 2 |" in (tmp_path / "scaling-cpu.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_big_race_runs_every_contender_on_one_file_in_one_budget(tmp_path):
    """The large-corpus case on a tiny generated corpus and budget: the plain Ray Tune and Optuna scripts each end an
    epoch within it, and each best model is scored by the referee on the same validation windows. (The orchestrator's
    side is `orchestrator run --data --budget`, which tests/test_budget.py runs; leaving it out here saves CI a minute.)"""
    from benchmarks.big_corpus import write_corpus

    corpus = write_corpus(tmp_path / "small.txt", 300_000)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.harness", "--size", "big", "--corpus", str(corpus), "--budget", "20s",
         "--epoch-steps", "20", "--contenders", "plain,optuna", "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=580,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "big-20s-steps20.json").read_text())
    assert set(record["runs"]) == {"plain", "optuna"}
    assert record["workload"]["corpus"] == "small.txt"  # no path of the machine in a results file
    for name, (run,) in record["runs"].items():
        assert run["epochs"] >= 1 and math.isfinite(run["best"]) and math.isfinite(run["referee"]), name
        assert run["pss_mb"] > 0 and run["rss_mb"] >= run["pss_mb"], name
        assert "model" not in run, name
    table = (tmp_path / "out" / "big-20s-steps20.md").read_text()
    assert "| best val_bpc, scored on the same validation windows |" in table and "Machine:" in table


def test_big_race_reads_a_stopped_contender_from_its_progress(tmp_path):
    """A contender stopped by force is reported from the epochs it had reported, and the table says so."""
    from benchmarks import big_race

    lines = [{"t": 30.0, "trial": "a", "value": 3.1, "step_s": 20.0}, {"t": 50.0, "trial": "b", "value": 2.9, "step_s": 18.0}]
    (tmp_path / "progress.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = big_race.from_progress(tmp_path, 270.0)
    assert (result["trials"], result["epochs"], result["best"], result["killed"]) == (2, 2, 2.9, True)
    assert result["curve"] == [[30.0, 3.1], [50.0, 2.9]] and result["model"] is None
    empty = big_race.from_progress(tmp_path / "none", 270.0)
    text = big_race.table({"plain": [{**result, "first_s": 30.0, "pss_mb": 1.0, "rss_mb": 2.0}],
                           "optuna": [{**empty, "first_s": None, "pss_mb": 1.0, "rss_mb": 2.0}]})
    assert "| best val_bpc by its own validation, within the budget | 2.9000 | none |" in text
    assert "stopped by force at 270 s" in text
    assert big_race.tree_memory(os.getpid())[0] > 0  # this process's own memory, read from /proc
