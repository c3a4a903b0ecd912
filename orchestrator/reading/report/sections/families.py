"""Which model families did well: each trial's best value, grouped by family."""

from __future__ import annotations

from typing import Any

import numpy as np

from orchestrator.reading import results as R
from orchestrator.reading.report.context import Context
from orchestrator.reading.report.figures import (
    baseline_line,
    baseline_notes,
    clip_notes,
    clipped_marks,
    metric_limits,
    new_figure,
    set_limits,
)
from orchestrator.reading.report.sections.base import Section


class Families(Section):
    id = "families"
    title = "Model families"
    how = "Each trial's best value, grouped by model family (box: quartiles; dots: trials)."

    def data(self, ctx: Context) -> dict[str, Any]:
        """`order`: the families tried, best median first; `untried`: the space's families no trial has a value for;
        `ylim`: `figures.metric_limits` of the trials' best values (the best of them and the baseline kept in view)."""
        values: dict[str, list[float]] = {}
        ids: dict[str, list[str]] = {}
        for t in ctx.trials:
            best = t.best(ctx.metric, ctx.mode)
            if best is not None:
                values.setdefault(t.family, []).append(best)
                ids.setdefault(t.family, []).append(t.trial_id)
        ranked = sorted(values, key=lambda f: float(np.median(values[f])), reverse=(ctx.mode == "max"))
        every = [v for vs in values.values() for v in vs]
        baseline = ctx.baseline
        ylim = metric_limits(every, keep=[(min if ctx.mode == "min" else max)(every, default=None), baseline and baseline["value"]])
        return {"metric": ctx.metric, "mode": ctx.mode, "order": ranked, "values": values, "trial_ids": ids,
                "status": {f: [ctx.status[i] for i in ids[f]] for f in ids}, "untried": [f for f in ctx.families if f not in values],
                "baseline": baseline, "ylim": ylim}

    def figure(self, data: dict, colors: dict) -> Any:
        fig, ax = new_figure(11, 3.8)
        order = data["order"]
        if order:
            ax.boxplot([data["values"][f] for f in order], positions=range(len(order)), widths=0.5, showfliers=False,
                       medianprops={"color": "black"}, boxprops={"color": "0.4"}, whiskerprops={"color": "0.4"}, capprops={"color": "0.4"})
            baseline_line(ax, data["baseline"])
            _trial_dots(ax, data, colors)
            ax.set_xticks(range(len(order)), [f"{f}\n({len(data['values'][f])} trials)" for f in order])
        set_limits(ax, data["ylim"])
        ax.set(ylabel=f"best {data['metric']} per trial")
        ax.grid(alpha=0.3, axis="y")
        return fig

    def notes(self, data: dict) -> list[str]:
        untried = [f"Never tried in this run: {', '.join(data['untried'])}."] if data["untried"] else []
        return clip_notes(data["ylim"], "trial") + baseline_notes(data["baseline"], data["metric"]) + untried


def _trial_dots(ax, data: dict, colors: dict) -> None:
    """One dot per trial over its family's box (a cross if it was stopped early), jittered sideways."""
    rng = np.random.default_rng(0)  # fixed jitter: the same run gives the same picture
    for i, f in enumerate(data["order"]):
        vals, early = np.array(data["values"][f]), np.array([s == R.STOPPED_EARLY for s in data["status"][f]])
        x = i + rng.uniform(-0.15, 0.15, len(vals))
        for mask, marker in ((~early, "o"), (early, "X")):
            ax.scatter(x[mask], vals[mask], marker=marker, color=colors.get(f, "0.4"), edgecolor="black", linewidth=0.4, zorder=3, s=40)
        clipped_marks(ax, x, vals, data["ylim"], color=colors.get(f, "0.4"), size=40)
    ax.scatter([], [], marker="X", color="0.8", edgecolor="black", label="stopped early")
    ax.legend(fontsize=8, loc="upper right")
