"""`orchestrator report` over a real (small) run: every section holds that run's own numbers, and the page renders.

One real run is shared by the whole module (a few seconds of tuning on 2 CPUs); the partial-run test
works on a copy of it with the files a still-running experiment has.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CONCURRENT, TINY_MAX_EPOCHS

from orchestrator.cli import main
from orchestrator.reading import results as R
from orchestrator.reading.report import (
    CLOCK_S,
    RUNNING,
    SECTIONS,
    TimeAxis,
    build_report,
    fanova_importance,
    render_html,
    sessions,
    write_report,
)
from trainables import constants as C

MAX_EPOCHS, CONCURRENT = TINY_MAX_EPOCHS, TINY_CONCURRENT


@pytest.fixture(scope="module")
def run_dir(finished_run) -> Path:
    """The session's finished tiny run (conftest), read-only."""
    return finished_run


@pytest.fixture(scope="module")
def model(run_dir) -> dict:
    return build_report(run_dir)


def usable_rows(trial: R.TrialRecord, metric: str) -> list[dict]:
    return [r for r in trial.rows if isinstance(r.get(metric), float) and not r.get(C.DIVERGED) and math.isfinite(r[metric])]


@pytest.mark.timeout(300)
def test_summary_counts_every_trial(run_dir, model):
    trials = R.load_trials(run_dir)
    s = model["summary"]
    assert s["trials"] == s["planned"] == len(trials) == 8
    assert sum(s["status_counts"].values()) == 8 and RUNNING not in s["status_counts"]
    assert s["state"] == "finished" and s["metric"] == C.BPC and s["families"] == ["lstm", "gru", "mlp"]


def test_best_so_far_follows_every_result(run_dir, model):
    trials = R.load_trials(run_dir)
    data = model["best-so-far"]
    everything = [r[C.BPC] for t in trials for r in usable_rows(t, C.BPC)]
    assert sorted(data["all_value"]) == sorted(everything)
    assert data["value"][-1] == min(everything)
    assert all(b < a for a, b in zip(data["value"], data["value"][1:])), "the best-so-far line only ever improves"
    assert data["t"] == sorted(data["t"]) and data["t"][0] >= 0 and data["end"] >= data["t"][-1]
    best_trial = min(trials, key=lambda t: t.best(C.BPC, "min"))
    assert data["trial_id"][-1] == best_trial.trial_id


@pytest.fixture(scope="module")
def page(model) -> str:
    return render_html(model)


def test_learning_curves_end_at_asha_rungs(run_dir, model):
    data = model["learning-curves"]
    stopped = {c["epochs"][-1] for c in data["trials"] if c["status"] == "stopped early"}
    # The rungs are read from the run (where trials were stopped), not from ASHA's rule; they must agree with
    # it: grace 1 and factor 2 over 4 epochs compare trials at epochs 1 and 2 (4 is the end, no decision).
    assert data["rungs"] == sorted(stopped) and set(data["rungs"]) <= {1, 2} and data["max_epochs"] == MAX_EPOCHS
    by_id = {c["trial_id"]: c for c in data["trials"]}
    trials = R.load_trials(run_dir)
    assert set(by_id) == {t.trial_id for t in trials}
    for t in trials:
        curve = by_id[t.trial_id]
        assert curve["epochs"] == [r["training_iteration"] for r in usable_rows(t, C.BPC)]
        assert curve["values"] == [r[C.BPC] for r in usable_rows(t, C.BPC)]
        if curve["status"] == "stopped early":
            assert curve["epochs"][-1] in data["rungs"] and curve["epochs"][-1] < MAX_EPOCHS
        elif curve["status"] == "finished":
            assert curve["epochs"][-1] == MAX_EPOCHS
    assert any(c["status"] == "stopped early" for c in data["trials"]), "ASHA stops some of 8 trials at 4 epochs"


def test_families_and_parallel_coordinates_hold_each_trials_values(run_dir, model):
    trials = {t.trial_id: t for t in R.load_trials(run_dir)}
    fam = model["families"]
    for family, ids in fam["trial_ids"].items():
        assert fam["values"][family] == [trials[i].best(C.BPC, "min") for i in ids]
        assert all(trials[i].family == family for i in ids)
    assert sum(len(v) for v in fam["trial_ids"].values()) == len(trials)
    assert set(fam["order"]) | set(fam["untried"]) == {"lstm", "gru", "mlp"}
    medians = [float(np.median(fam["values"][f])) for f in fam["order"]]
    assert medians == sorted(medians), "families are shown best (lowest median) first"

    par = model["parallel-coordinates"]
    assert par["panels"], "8 trials over 3 families: at least one family has a panel"
    for panel in par["panels"]:
        names = [a["name"] for a in panel["axes"]]
        assert "family" not in names and "lr" in names and "batch_size" not in names  # batch_size is a constant
        assert next(a for a in panel["axes"] if a["name"] == "lr")["log"] is True  # the space samples lr log-uniformly
        for line in panel["trials"]:
            hp = trials[line["trial_id"]].hparams()
            assert trials[line["trial_id"]].family == panel["family"] and line["values"] == [hp[n] for n in names]
            assert line["metric"] == trials[line["trial_id"]].best(C.BPC, "min")
    assert sum(len(p["trials"]) for p in par["panels"]) + sum(par["skipped"].values()) == len(trials)


def test_importance_comes_from_fanova_over_the_shared_hyperparameters(run_dir, model):
    imp = model["importance"]
    trials = R.load_trials(run_dir)
    hps = [t.hparams() for t in trials]
    varying = {k for h in hps for k in h if len({repr(x.get(k)) for x in hps}) > 1}
    shared = {k for k in varying if all(k in h for h in hps)}
    assert imp["note"] is None and imp["n_trials"] == len(trials)
    assert set(imp["importances"]) == shared and {"family", "lr"} <= shared
    assert set(imp["conditional"]) == varying - shared
    assert all(0 <= v <= 1 for v in imp["importances"].values())
    assert sum(imp["importances"].values()) == pytest.approx(1.0)
    assert list(imp["importances"].values()) == sorted(imp["importances"].values(), reverse=True)
    again = fanova_importance(trials[::-1], C.BPC, "min", {t.trial_id: t.hparams() for t in trials}, {"lr"})
    assert again["importances"] == imp["importances"], "the same run gives the same importances, whatever the file order"


def test_timeline_puts_trials_on_at_most_max_concurrent_slots(run_dir, model):
    tl = model["timeline"]
    trials = R.load_trials(run_dir)
    # A bar per session: ASHA's promotions pause trials and resume them from their checkpoints (a new session).
    assert sorted({b["trial_id"] for b in tl["bars"]}) == sorted(t.trial_id for t in trials)
    assert len(tl["bars"]) == sum(len(sessions(t.rows)) for t in trials)
    assert 1 <= tl["slots"] <= CONCURRENT and tl["max_concurrent"] == CONCURRENT
    assert all(0 <= b["start"] < b["end"] for b in tl["bars"])
    for slot in range(tl["slots"]):
        bars = sorted((b for b in tl["bars"] if b["slot"] == slot), key=lambda b: b["start"])
        assert all(b["start"] >= a["end"] - 2 * CLOCK_S for a, b in zip(bars, bars[1:])), "bars on one slot follow each other"
    assert 0 < tl["utilization"] <= 1


def test_leaderboard_ranks_trials_and_shows_the_test_metric(run_dir, model):
    lb = model["leaderboard"]
    values = [row["best"] for row in lb["rows"]]
    assert values == sorted(values) and len(values) == 8
    exported = json.loads((run_dir / "best" / "metrics.json").read_text())
    assert lb["best"]["trial_id"] == exported["trial_id"] == lb["rows"][0]["trial_id"]
    assert lb["best"]["metrics"]["test_bpc"] == exported["metrics"]["test_bpc"]
    assert lb["rows"] == R.leaderboard_rows(R.load_trials(run_dir), C.BPC, "min", MAX_EPOCHS), "the same rows as `orchestrator best`"
    assert "lr" in lb["columns"] and "batch_size" not in lb["columns"], "the table shows the hyperparameters that varied"


@pytest.mark.parametrize("sid", list(SECTIONS))
def test_every_section_renders_a_figure_or_a_table(sid, page):
    section = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert section, f"section {sid} missing"
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', section.group(1))
    assert [base64.b64decode(i)[:4] for i in images] == [b"\x89PNG"] or (not images and "<table>" in section.group(1))
    assert f'href="#{sid}"' in page, "every section is linked from the page's navigation"


def test_report_reads_a_run_without_torch_or_ray_tune(run_dir):
    """`orchestrator report` answers fast because it imports neither torch nor Ray Tune, nor the run flow."""
    code = ("import sys; import orchestrator.reading.report as r; r.render_html(r.build_report(sys.argv[1])); "
            "print([m for m in ('torch', 'ray.tune', 'orchestrator.running.runner', 'orchestrator.running.tuning') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=120,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_cli_writes_one_self_contained_page(run_dir, model, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text()
    assert all(f'<section id="{sid}">' in page for sid in SECTIONS)
    assert not re.search(r'(src|href)="(?!data:|#)', page), "the page must not load anything from elsewhere"
    assert model["leaderboard"]["best"]["trial_id"] in page and "test_bpc" in page
    assert main(["report", str(tmp_path)]) == 2 and "error:" in capsys.readouterr().err


def test_report_of_a_run_still_in_progress(run_dir, tmp_path):
    """The files of a run mid-way: no best/ yet, one trial with two epochs reported, one that has not reported at all."""
    partial = tmp_path / "tiny"
    # Without the finished run's saved experiment state, which says every trial TERMINATED (mid-way it says RUNNING).
    shutil.copytree(run_dir, partial, ignore=shutil.ignore_patterns("checkpoint_*", "best", "experiment_state-*.json"))
    finished = next(t for t in R.load_trials(partial) if t.epochs == MAX_EPOCHS)
    rows = [dict(r, done=False) for r in finished.rows[:2]]
    (finished.path / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fresh = partial / "gru_00000000"
    fresh.mkdir()
    (fresh / "params.json").write_text(json.dumps({"arch": {"family": "gru", "model": {"hidden_size": 16}}, "lr": 0.003, "batch_size": 32}))

    # Trials ASHA stopped while they waited paused at a rung have no final (`done`) result either: without the
    # saved state, they too are in progress.
    paused = sum(1 for t in R.load_trials(run_dir) if t.rows and not t.rows[-1].get("done") and t.trial_id != finished.trial_id)
    model = build_report(partial)
    assert model["summary"]["status_counts"][RUNNING] == 2 + paused and model["summary"]["state"].startswith("in progress")
    curve = next(c for c in model["learning-curves"]["trials"] if c["trial_id"] == finished.trial_id)
    assert curve["epochs"] == [1, 2] and curve["status"] == RUNNING
    assert model["leaderboard"]["best"] is None and model["leaderboard"]["rows"][-1]["trial_id"] == "00000000"
    page = render_html(model)
    assert "the test metric appears once the run has finished" in page and all(f'id="{sid}"' in page for sid in SECTIONS)


def test_a_resumed_trial_has_two_sessions_and_the_pause_is_cut_out():
    """Result rows as Tune writes them for a trial restored from its checkpoint an hour after an interruption."""
    t0 = 1_700_000_000

    def row(ts, it, since_restore, it_since_restore):
        return {"timestamp": ts, "training_iteration": it, "time_this_iter_s": 2.0, "time_since_restore": since_restore,
                "iterations_since_restore": it_since_restore}

    rows = [row(t0 + 2, 1, 2.0, 1), row(t0 + 4, 2, 4.0, 2), row(t0 + 3604, 3, 2.0, 1), row(t0 + 3606, 4, 4.0, 2)]
    spans = sessions(rows)
    assert len(spans) == 2 and spans[1][0] - spans[0][1] > 3500
    axis = TimeAxis(spans)
    assert len(axis.pauses) == 1 and axis.marks()[0]["hidden_s"] > 3500
    assert axis(spans[1][1]) - axis(spans[0][0]) < 10, "the hour with nothing running is not on the axis"


# Put into a copy of the report for the browser check: the first script records every error the page raises
# (a script error, an image or other resource that fails to load); the second, once the page has loaded,
# measures each section's figures as drawn (decoded size, size on screen, share of inked pixels: a blank or
# broken figure has none) and its table, and leaves the result on <body> for --dump-dom to carry out.
ERRORS_JS = """<script>window.__errors = [];
window.addEventListener("error", e => window.__errors.push(e.message || (e.target && e.target.outerHTML || "").slice(0, 80)), true);
</script>"""
MEASURE_JS = """<script>window.addEventListener("load", () => {
  const ink = img => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    if (!canvas.width || !canvas.height) return 0;
    const g = canvas.getContext("2d"); g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0;  // coloured (lines, bars) or dark (axes, text) pixels
    for (let i = 0; i < px.length; i += 4) {
      const hi = Math.max(px[i], px[i + 1], px[i + 2]), lo = Math.min(px[i], px[i + 1], px[i + 2]);
      if (hi - lo > 60 || hi < 128) inked++;
    }
    return inked / (px.length / 4);
  };
  const sections = {};
  for (const s of document.querySelectorAll("section[id]")) {
    const figures = [...s.querySelectorAll("img")].map(img => ({width: img.naturalWidth, shown: img.getBoundingClientRect().width, ink: ink(img)}));
    sections[s.id] = {figures, table_rows: [...s.querySelectorAll("table tr")].filter(r => r.getBoundingClientRect().height > 0).length};
  }
  document.body.setAttribute("data-check", JSON.stringify({errors: window.__errors, sections}));
});</script>"""


@pytest.mark.timeout(120)
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    """The page as a real browser draws it: every section shows its figure (decoded, on screen, not blank) or its
    table, and the page logs nothing to the console and raises no error. In CI (`.ci/run` installs Chromium)
    a missing browser fails the test instead of skipping it."""
    import html
    import os

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        if os.environ.get("CI"):
            pytest.fail("no Chromium in CI: .ci/run installs Debian's `chromium` package before the tests")
        pytest.skip("no headless Chromium on this machine (e.g. `apt-get install chromium`); the HTML itself is checked above")
    out, _ = write_report(run_dir, tmp_path / "report.html")
    page = out.read_text()
    assert page.count("<head>") == page.count("</body>") == 1
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("<head>", "<head>" + ERRORS_JS, 1).replace("</body>", MEASURE_JS + "</body>", 1))
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--window-size=1400,3000",
                               "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page wrote to the browser console"
    found = re.search(r'<body[^>]*data-check="([^"]*)"', done.stdout)
    assert found, "the page never finished loading: " + done.stderr[-2000:]
    check = json.loads(html.unescape(found.group(1)))
    assert check["errors"] == [] and set(check["sections"]) == set(SECTIONS)
    for sid, section in check["sections"].items():
        assert section["figures"] or section["table_rows"] > 1, f"section {sid} shows neither a figure nor a table"
        for figure in section["figures"]:
            assert figure["width"] > 100 and figure["shown"] > 100, f"section {sid}: a figure not drawn: {figure}"
            assert figure["ink"] > 0.002, f"section {sid}: a blank figure: {figure}"
