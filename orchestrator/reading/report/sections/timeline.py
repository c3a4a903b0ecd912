"""Where and when trials ran: each trial's sessions as bars on the worker slots."""

from __future__ import annotations

from typing import Any

import numpy as np

from orchestrator.reading import results as R
from orchestrator.reading.report.context import Context
from orchestrator.reading.report.figures import new_figure, pause_lines, time_unit
from orchestrator.reading.report.sections.base import Section
from orchestrator.reading.report.timing import CLOCK_S, pause_notes, sessions

BROKE = {R.FAILED, R.DIVERGED}  # drawn with a red edge


def _slots(bars: list[dict], cap: int | None) -> int:
    """Puts each bar on the lowest worker slot free at its start (greedy); returns how many slots it took.

    Where results carry only Tune's whole-second times, a trial can seem to start just before the one it
    followed on its slot ended. With `cap` (the experiment's max_concurrent) known, no more than `cap`
    slots are opened; without it, a bar that overlaps a slot's last bar by less than CLOCK_S goes there
    rather than opening a slot that never existed.
    """
    ends: list[float] = []
    for bar in sorted(bars, key=lambda b: (b["start"], b["end"])):
        free = [i for i, end in enumerate(ends) if end <= bar["start"]]
        soonest = int(np.argmin(ends)) if ends else -1
        if free:
            slot = free[0]
        elif cap is not None:
            slot = len(ends) if len(ends) < cap else soonest
        else:
            slot = soonest if ends and ends[soonest] <= bar["start"] + CLOCK_S else len(ends)
        if slot == len(ends):
            ends.append(bar["end"])
        ends[slot] = bar["end"]
        bar["slot"] = slot
    return len(ends)


class Timeline(Section):
    id = "timeline"
    title = "Timeline"
    how = "Each trial as a bar on the worker slot that ran it; white gaps are idle slots."

    def data(self, ctx: Context) -> dict[str, Any]:
        """One bar per session of each trial (a resumed trial has two); `utilization`: busy share of slots x span."""
        axis, max_concurrent = ctx.axis, ctx.run.experiment.get("max_concurrent")
        bars = [
            {"trial_id": t.trial_id, "family": t.family, "status": ctx.status[t.trial_id], "start": axis(a), "end": axis(b)}
            for t in ctx.trials
            for a, b in sessions(t.rows)
        ]
        slots = _slots(bars, max_concurrent)
        span = max((b["end"] for b in bars), default=0.0) - min((b["start"] for b in bars), default=0.0)
        busy = sum(b["end"] - b["start"] for b in bars)
        return {"bars": bars, "slots": slots, "max_concurrent": max_concurrent, "span_s": span, "busy_s": busy,
                "utilization": min(1.0, busy / (slots * span)) if slots and span > 0 else None, "pauses": axis.marks()}

    def figure(self, data: dict, colors: dict) -> Any:
        fig, ax = new_figure(11, 1.2 + 0.45 * max(1, data["slots"]))
        scale, unit = time_unit(data["span_s"])
        _bars(ax, data["bars"], colors, scale)
        for bar in data["bars"]:
            if (bar["end"] - bar["start"]) / max(data["span_s"], 1e-9) > 0.06:
                ax.text((bar["start"] + bar["end"]) / 2 / scale, bar["slot"], bar["trial_id"], ha="center", va="center", fontsize=7)
        pause_lines(ax, data["pauses"], scale)
        ax.set_xlim(left=0)
        ax.set_yticks(range(data["slots"]), [f"slot {i + 1}" for i in range(data["slots"])])
        ax.set_ylim(data["slots"] - 0.5, -0.5)
        ax.set(xlabel=f"wall time since the first trial started ({unit})")
        handles = _legend(data, colors)
        # Above the plot, so that it never hides a bar.
        ax.legend(handles=handles, fontsize=8, loc="lower right", bbox_to_anchor=(1, 1.01), ncols=len(handles), frameon=False)
        ax.grid(alpha=0.3, axis="x")
        return fig

    def notes(self, data: dict) -> list[str]:
        notes = pause_notes(data["pauses"])
        if data["utilization"] is not None:
            notes.append(f"{data['slots']} worker slot(s) used (max_concurrent: {data['max_concurrent'] or 'as many as fit'}); "
                         f"busy {data['utilization']:.0%} of the time from the first trial's start to the last one's end.")
        return notes


def _bars(ax, bars: list[dict], colors: dict, scale: float) -> None:
    """Every bar, as one collection of rectangles per hatch (an artist per bar took seconds for thousands of trials):
    the family's colour, faded if stopped early, hatched if still running, a red edge if it failed or diverged."""
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba

    for hatch in (None, "//"):
        group = [b for b in bars if (b["status"] == R.UNFINISHED) == (hatch is not None)]
        if not group:
            continue
        boxes, faces, edges, widths = [], [], [], []
        for bar in group:
            x0, w = bar["start"] / scale, max(bar["end"] - bar["start"], 0.05) / scale
            y0, y1 = bar["slot"] - 0.38, bar["slot"] + 0.38
            boxes.append([(x0, y0), (x0, y1), (x0 + w, y1), (x0 + w, y0)])
            alpha, broke = 0.55 if bar["status"] == R.STOPPED_EARLY else 0.9, bar["status"] in BROKE
            faces.append(to_rgba(colors.get(bar["family"], "0.5"), alpha))
            edges.append(to_rgba("red" if broke else "black", alpha))
            widths.append(1.5 if broke else 0.5)
        ax.add_collection(PolyCollection(boxes, facecolors=faces, edgecolors=edges, linewidths=widths, hatch=hatch), autolim=True)
    ax.autoscale_view()


def _legend(data: dict, colors: dict) -> list:
    """The families on the timeline, then a key for each bar style that appears (stopped early, running, failed)."""
    from matplotlib.patches import Patch

    used = [f for f in colors if any(b["family"] == f for b in data["bars"])]
    handles = [Patch(facecolor=colors[f], edgecolor="black", linewidth=0.5, label=f) for f in used]
    statuses = {b["status"] for b in data["bars"]}
    handles += [Patch(facecolor="0.8", alpha=0.55, edgecolor="black", linewidth=0.5, label="stopped early")] * (R.STOPPED_EARLY in statuses)
    handles += [Patch(facecolor="white", hatch="//", edgecolor="black", linewidth=0.5, label="running")] * (R.UNFINISHED in statuses)
    handles += [Patch(facecolor="white", edgecolor="red", linewidth=1.5, label="failed")] * bool(statuses & BROKE)
    return handles
