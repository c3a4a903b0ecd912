"""`orchestrator report`: one self-contained HTML page that shows how a search went.

Built in two steps. `build_report(run_dir)` reads the run directory (through `results`: no torch, no Ray
Tune) into a plain data model: a summary and one entry per section, each holding the numbers its figure
shows. `render_html(model)` draws each section with matplotlib and embeds it as a base64 PNG, so the page
opens offline and can be attached to a CI run or mailed. Tests check the data model against the run's
own files, and the HTML for every section.

Each section is one object in `SECTIONS` (sections/): its title, how to read it, its data, its figure
or table and its notes. They all read one `Context` (context.py), the run read once.

It works on a finished run, on one still running (a trial whose last result is not final counts as
running) and on one that was interrupted and resumed: a trial's results before and after the resume
become two bars on the timeline, and the pause between the sessions is cut out of the time axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.reading import results as R
from orchestrator.reading.report.context import Context
from orchestrator.reading.report.figures import family_colors
from orchestrator.reading.report.importance import fanova_importance
from orchestrator.reading.report.page import document, header, section_html, summary
from orchestrator.reading.report.sections import SECTIONS, Section
from orchestrator.reading.report.timing import CLOCK_S, TimeAxis, sessions
from trainables.files import write_text_atomic

RUNNING = R.UNFINISHED  # no final result yet: still running, or interrupted and not resumed (yet)
REPORT_FILE = "report.html"

__all__ = ["CLOCK_S", "REPORT_FILE", "RUNNING", "SECTIONS", "Context", "Section", "TimeAxis", "build_report",
           "fanova_importance", "render_html", "sessions", "write_report"]


def build_report(run_dir: Path) -> dict[str, Any]:
    """The report's data model: `summary`, and one entry per section (by its id) with the numbers it shows."""
    ctx = Context.read(run_dir)
    return {"summary": summary(ctx), **{sid: section.data(ctx) for sid, section in SECTIONS.items()}}


def render_html(model: dict[str, Any]) -> str:
    """The report as one HTML string: styles inline, every figure an embedded PNG, no external reference."""
    s = model["summary"]
    colors = family_colors(s["families"] + s["other_families"])  # the space's order: a family keeps its colour
    body = [header(s, SECTIONS.values())] + [section_html(section, model[sid], colors) for sid, section in SECTIONS.items()]
    return document(s["name"], body)


def write_report(run_dir: Path, out: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Builds and writes the report (default `<run_dir>/report.html`), replacing any older one in one step."""
    model = build_report(run_dir)
    out = Path(out) if out else Path(run_dir) / REPORT_FILE
    write_text_atomic(out, render_html(model))
    return out, model
