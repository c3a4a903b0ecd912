"""The page around the sections: the run's summary (title line, cards, navigation), the styles and the HTML document."""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from typing import Any, Iterable

from orchestrator.reading import results as R
from orchestrator.reading.report.context import Context
from orchestrator.reading.report.sections.base import Section
from orchestrator.search.schedulers import SCHEDULERS

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232b; margin: 0; background: #f4f5f7; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 0 0 4px; }
.meta { color: #56606b; margin: 0 0 14px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0 18px; }
.card { background: white; border-radius: 8px; padding: 10px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 110px; }
.card b { display: block; font-size: 20px; } .card span { color: #56606b; font-size: 13px; }
nav a { margin-right: 14px; color: #2458a6; text-decoration: none; font-size: 14px; }
section { background: white; border-radius: 10px; padding: 18px 20px; margin: 18px 0; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.how { color: #56606b; margin: 0 0 10px; font-size: 14px; } .note { color: #8a5a00; font-size: 14px; }
img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e3e6ea; text-align: left; white-space: nowrap; }
td.hp { white-space: normal; color: #3a434d; font-size: 12px; }
th { background: #f0f2f5; } tr.top td { background: #fff6d6; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.best { background: #eef6ee; border-left: 4px solid #3b8a3b; padding: 8px 12px; margin: 0 0 12px; }
"""


def summary(ctx: Context) -> dict[str, Any]:
    """The header's numbers: what ran (task, metric, searcher, scheduler), how many trials and how they ended.

    `families`: the search space's, in its order; `other_families`: those of trials the space no longer
    names. Together they fix each family's colour across the figures.
    """
    e, run = ctx.run.experiment, ctx.run
    counts = dict(Counter(ctx.status.values()))  # (`results.status_counts`, from the statuses the context decided once)
    finished = ctx.best_model is not None and R.UNFINISHED not in counts
    return {
        "name": run.run_dir.name, "run_dir": str(run.run_dir), "task": e["task"]["kind"], "metric": ctx.metric, "mode": ctx.mode,
        "searcher": e["searcher"], "scheduler": run.scheduler, "scheduler_text": SCHEDULERS[run.scheduler["kind"]].describe(run.scheduler),
        "planned": run.planned_trials(), "trials": len(ctx.trials), "status_counts": counts,
        "state": "finished" if finished else "in progress (or interrupted)", "families": ctx.families,
        "other_families": sorted({t.family for t in ctx.trials} - set(ctx.families)),
        "generated": dt.datetime.now().isoformat(timespec="seconds"),
    }


def header(s: dict[str, Any], sections: Iterable[Section]) -> str:
    """Title, one line on what ran, a card per trial count, and a link to each section."""
    cards = [(s["trials"], f"of {s['planned']} planned trials")] + [(n, k) for k, n in sorted(s["status_counts"].items())]
    nav = "".join(f'<a href="#{sec.id}">{html.escape(sec.title)}</a>' for sec in sections)
    return (
        f"<h1>{html.escape(s['name'])}</h1>"
        f'<p class="meta">{html.escape(s["task"])} task, optimizing {html.escape(s["metric"])} ({s["mode"]}) with '
        f"{html.escape(s['searcher'])} + {html.escape(s['scheduler_text'])} &middot; {html.escape(s['state'])} &middot; "
        f"report generated {html.escape(s['generated'])}<br>{html.escape(s['run_dir'])}</p>"
        f'<div class="cards">' + "".join(f"<div class=card><b>{n}</b><span>{html.escape(k)}</span></div>" for n, k in cards) + "</div>"
        f"<nav>{nav}</nav>"
    )


def section_html(section: Section, data: dict[str, Any], colors: dict[str, Any]) -> str:
    """One <section>: title, how to read it, its figure or table, and its caveats."""
    parts = [f'<section id="{section.id}"><h2>{html.escape(section.title)}</h2><p class="how">{html.escape(section.how)}</p>',
             section.body(data, colors)]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in section.notes(data)]
    return "\n".join(p for p in parts + ["</section>"] if p)


def document(title: str, body: list[str]) -> str:
    """The whole page: styles inline, nothing loaded from elsewhere."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}: search report</title>'
            f"<style>{CSS}</style></head>\n<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n")
