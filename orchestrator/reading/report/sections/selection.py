"""Model selection: each trial's best value against its size and its speed with the Pareto front marked, the models
the usual rules pick, and the ensemble (when one was built) against the best single model."""

from __future__ import annotations

import html
from typing import Any

from orchestrator.errors import UserError
from orchestrator.reading.report.context import Context
from orchestrator.reading.report.figures import (
    fmt,
    img_html,
    metric_limits,
    new_panels,
    set_limits,
)
from orchestrator.reading.report.sections.base import Section
from orchestrator.reading.selection import measured, pareto_front, pick
from trainables import constants as C

RULES = ("smallest within 1%", "fastest within 1%", "smallest within 5%")


class ModelSelection(Section):
    id = "selection"
    title = "Model selection"
    how = ("Each trial's best value against its parameter count and its latency for one input (ringed: the Pareto front, "
           "the trials no other beats in all three); below, what `export --pick` takes and the ensemble, if one was built.")

    def data(self, ctx: Context) -> dict[str, Any]:
        """`points`: the trials with a value, a size and a latency; `front`: the Pareto front's ids, best first; `picks`:
        rule -> {trial_id, reason}; `ensemble`: best/ensemble.json (None when no ensemble was built)."""
        trials = measured(ctx.trials, ctx.metric, ctx.mode)
        points = [{"trial_id": t.trial_id, "family": t.family, "value": t.best(ctx.metric, ctx.mode), "params": t.num_params,
                   "latency_ms": t.latency_ms} for t in trials]
        picks = {}
        for rule in RULES:
            try:
                chosen = pick(trials, rule, ctx.metric, ctx.mode)
            except UserError:
                break  # no trial has the figures (a run from before they were recorded)
            picks[rule] = {"trial_id": chosen.trial.trial_id, "reason": chosen.reason}
        values = [p["value"] for p in points]
        return {"metric": ctx.metric, "mode": ctx.mode, "points": points,
                "front": [t.trial_id for t in pareto_front(trials, ctx.metric, ctx.mode)], "picks": picks,
                "ensemble": ctx.run.ensemble(), "method": C.LATENCY_METHOD,
                "ylim": metric_limits(values, keep=[(min if ctx.mode == "min" else max)(values, default=None)])}

    def body(self, data: dict, colors: dict) -> str:
        if not data["points"]:
            return '<p class="note">No trial has recorded its size and latency yet.</p>'
        parts = [img_html(self._figure(data, colors), self.title), f'<p class="note">Latency: {html.escape(data["method"])}.</p>']
        if data["picks"]:
            parts.append("<ul>" + "".join(f"<li><b>{html.escape(rule)}</b>: {html.escape(p['reason'])}</li>"
                                          for rule, p in data["picks"].items()) + "</ul>")
        parts.append(_ensemble_html(data["ensemble"], data["metric"]))
        return "\n".join(parts)

    def _figure(self, data: dict, colors: dict):
        fig, (size_ax, speed_ax) = new_panels(11, 6.4, 2)
        front = set(data["front"])
        for ax, key, label in ((size_ax, "params", "parameters"), (speed_ax, "latency_ms", "ms for one input")):
            for family in dict.fromkeys(p["family"] for p in data["points"]):
                mine = [p for p in data["points"] if p["family"] == family]
                ax.scatter([p[key] for p in mine], [p["value"] for p in mine], color=colors.get(family, "0.4"), s=22,
                           label=family, edgecolor="none", rasterized=len(data["points"]) > 500)
            ringed = [p for p in data["points"] if p["trial_id"] in front]
            ax.scatter([p[key] for p in ringed], [p["value"] for p in ringed], facecolor="none", edgecolor="black", s=90,
                       linewidth=1.2, label="Pareto front")
            ax.set_xscale("log")
            set_limits(ax, data["ylim"])
            ax.set(xlabel=label, ylabel=f"best {data['metric']}")
            ax.grid(alpha=0.3)
        size_ax.legend(fontsize=8, loc="best")
        return fig

    def notes(self, data: dict) -> list[str]:
        return [f"{len(data['front'])} of {len(data['points'])} trials are on the Pareto front; "
                "`orchestrator best RUN --pareto` lists them."] if data["points"] else []


def _ensemble_html(record: dict | None, metric: str) -> str:
    if not record:
        return ('<p class="note">No ensemble was built: `orchestrator export RUN --ensemble K --out FILE` (or `ensemble: K` '
                "in the experiment) builds one from the top K trials.</p>")
    test = C.test_key(metric)
    single = (record.get("best_single") or {}).get("metrics") or {}
    rows = [("ensemble", record["metrics"]), ("best single model", single)]
    table = "<table><tr><th></th><th>" + html.escape(metric) + "</th><th>" + html.escape(test) + "</th></tr>" + "".join(
        f"<tr><td>{name}</td><td class=num>{fmt(m.get(metric))}</td><td class=num>{fmt(m.get(test))}</td></tr>" for name, m in rows
    ) + "</table>"
    members = ", ".join(f"{html.escape(m['trial_id'])} ({html.escape(m['family'])}) {m['weight']:.2f}" for m in record["members"])
    return f"<p>Ensemble of {len(record['members'])} of the top {record['k']} trials (weights by greedy selection): {members}</p>{table}"
