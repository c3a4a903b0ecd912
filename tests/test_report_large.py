"""The report over large runs: 2,000 one-epoch trials and 330 trials of up to 27 epochs, simulated in the real on-disk
format (`benchmarks/large_run.py`). Every section renders with the run's own counts, dense figures are drawn as a few
aggregated layers (not an artist per trial) and the page stays a few MB. How long it takes is the benchmark's
business (`python -m benchmarks.reading`), not a test's.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.large_run import SHAPES, LargeRun, write_large_run
from orchestrator.reading import results as R
from orchestrator.reading.report import SECTIONS, build_report, render_html
from orchestrator.reading.report.figures import family_colors
from trainables import constants as C

MAX_PAGE_BYTES = 6_000_000  # the figures are images of a fixed size; only the leaderboard's table grows with the trials
MAX_ARTISTS = 60  # lines, collections and patches of one figure's axes, whatever the number of trials


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> LargeRun:
    return write_large_run(tmp_path_factory.mktemp("large"), "wide")


@pytest.fixture(scope="module")
def deep(tmp_path_factory) -> LargeRun:
    return write_large_run(tmp_path_factory.mktemp("large"), "deep")


@pytest.fixture(scope="module")
def wide_model(wide) -> dict:
    return build_report(wide.path)


def _colors(model: dict) -> dict:
    s = model["summary"]
    return family_colors(s["families"] + s["other_families"])


@pytest.mark.timeout(600)
def test_the_generated_run_reads_back_as_simulated(wide, deep):
    for run in (wide, deep):
        trials = R.load_trials(run.path)
        max_epochs = R.read_run(run.path).max_epochs
        assert len(trials) == sum(run.counts.values()) == SHAPES[run.path.name.removeprefix("large-")].trials
        assert dict(Counter(t.status(max_epochs) for t in trials)) == run.counts
        assert {t.trial_id: t.epochs for t in trials} == run.epochs
    assert wide.counts[R.FINISHED] > 1900 and deep.counts[R.STOPPED_EARLY] > 250 and deep.counts[R.FINISHED] >= 10


@pytest.mark.timeout(600)
def test_report_of_2000_trials_has_every_section_and_the_right_counts(wide, wide_model):
    s = wide_model["summary"]
    assert s["trials"] == s["planned"] == 2000 and s["status_counts"] == wide.counts
    assert len(wide_model["learning-curves"]["trials"]) == 2000
    assert len(wide_model["timeline"]["bars"]) == 2000, "one session each"
    assert [r["trial_id"] for r in wide_model["leaderboard"]["rows"]][:1] == [json.loads((wide.path / "best" / "metrics.json").read_text())["trial_id"]]
    assert len(wide_model["leaderboard"]["rows"]) == 2000
    scored = 2000 - wide.counts[R.DIVERGED] - wide.counts[R.INFEASIBLE]
    par = wide_model["parallel-coordinates"]
    assert sum(len(p["trials"]) for p in par["panels"]) + sum(par["skipped"].values()) == scored
    assert wide_model["importance"]["n_trials"] == scored and wide_model["importance"]["importances"]
    assert len(wide_model["best-so-far"]["all_value"]) == scored

    page = render_html(wide_model)
    assert len(page.encode()) < MAX_PAGE_BYTES, f"the page is {len(page.encode()) / 1e6:.1f} MB"
    for sid in SECTIONS:
        section = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
        assert section, f"section {sid} missing"
        for image in re.findall(r'src="data:image/png;base64,([^"]+)"', section.group(1)):
            assert base64.b64decode(image)[:4] == b"\x89PNG"
    assert page.count("<tr") == 2000 + 1, "the leaderboard lists every trial"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sid", ["best-so-far", "learning-curves", "families", "parallel-coordinates", "timeline"])
def test_dense_figures_are_a_few_aggregated_layers(sid, wide_model):
    """An artist per trial is what made a large report take minutes: a figure of 2,000 trials holds a few collections."""
    fig = SECTIONS[sid].figure(wide_model[sid], _colors(wide_model))
    for ax in fig.axes:
        artists = len(ax.lines) + len(ax.collections) + len(ax.patches)
        assert artists <= MAX_ARTISTS, f"{sid}: {artists} artists in one axes"


@pytest.mark.timeout(600)
def test_report_of_330_multi_epoch_trials_keeps_each_curve_and_the_rungs(deep):
    model = build_report(deep.path)
    curves = model["learning-curves"]
    assert len(curves["trials"]) == 330 and curves["rungs"] == [1, 3, 9]
    by_id = {c["trial_id"]: c for c in curves["trials"]}
    for trial_id, epochs in deep.epochs.items():
        c = by_id[trial_id]
        if c["status"] in (R.FINISHED, R.STOPPED_EARLY):
            assert c["epochs"] == list(range(1, epochs + 1))
    assert model["summary"]["status_counts"] == deep.counts
    # A trial promoted past a rung resumed from its checkpoint: a bar per session on the timeline.
    assert len(model["timeline"]["bars"]) > 330 and model["timeline"]["slots"] == SHAPES["deep"].max_concurrent
    page = render_html(model)
    assert len(page.encode()) < MAX_PAGE_BYTES and all(f'<section id="{sid}">' in page for sid in SECTIONS)


def test_generated_files_have_the_shape_of_a_real_run(finished_run, tmp_path):
    """The simulated run's files hold what a real run's hold: the same result keys, config shape and Tune state."""
    fake = write_large_run(tmp_path, "deep").path
    real_trial = next(p.parent for p in finished_run.glob("*/result.json"))
    fake_trial = next(p.parent for p in fake.glob("*/result.json") if not (p.parent / "error.txt").exists()
                      and not (p.parent / C.INFEASIBLE_FILE).exists())

    def keys(trial: Path) -> set[str]:
        return {k for line in (trial / "result.json").read_text().splitlines() for k in json.loads(line)}

    assert keys(real_trial) == keys(fake_trial), keys(real_trial) ^ keys(fake_trial)
    assert set(json.loads((real_trial / "params.json").read_text())) <= set(R.read_experiment(fake)["search_space"]["train"]) | {"arch"}
    assert set(R.read_experiment(finished_run)) == set(R.read_experiment(fake))
    real_state = json.loads(next(finished_run.glob("experiment_state-*.json")).read_text())
    fake_state = json.loads(next(fake.glob("experiment_state-*.json")).read_text())
    real_trial_json, fake_trial_json = (json.loads(s["trial_data"][0][0]) for s in (real_state, fake_state))
    assert {"trial_id", "status", "config", "evaluated_params", "experiment_tag"} <= set(real_trial_json) & set(fake_trial_json)
