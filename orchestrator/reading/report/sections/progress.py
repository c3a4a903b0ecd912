"""How the search progressed: the best value over wall time, and every trial's learning curve."""

from __future__ import annotations

from typing import Any

import numpy as np

from orchestrator.reading import results as R
from orchestrator.reading.report.context import Context, usable
from orchestrator.reading.report.figures import (
    baseline_line,
    baseline_notes,
    clip_notes,
    clipped_marks,
    fmt,
    metric_limits,
    new_figure,
    pause_lines,
    set_limits,
    time_unit,
)
from orchestrator.reading.report.sections.base import Section
from orchestrator.reading.report.timing import pause_notes, sessions, timed_rows

# Where a curve ends, how it ended: marker and size.
END_MARKERS = {R.STOPPED_EARLY: ("X", 70), R.UNFINISHED: (">", 40), R.FAILED: ("v", 50), R.DIVERGED: ("v", 50)}


class BestSoFar(Section):
    id = "best-so-far"
    title = "Best so far"
    how = "Every reported result (grey dots) and the best value reached so far (line), against wall time."

    # Data: `ylim` (`figures.metric_limits` of every result, keeping the best value and the baseline in view) and
    # `baseline` (`Context.baseline`, or None).

    def data(self, ctx: Context) -> dict[str, Any]:
        metric, mode, axis = ctx.metric, ctx.mode, ctx.axis
        points = sorted((axis(t), row[metric], tr.trial_id) for tr in ctx.trials for t, _, row in timed_rows(tr.rows) if usable(row, metric))
        steps: dict[str, list] = {"t": [], "value": [], "trial_id": []}
        best = None
        for t, value, trial_id in points:
            if best is None or (value < best if mode == "min" else value > best):
                best = value
                for key, v in zip(steps, (t, value, trial_id)):
                    steps[key].append(v)
        end = max((axis(b) for tr in ctx.trials for _, b in sessions(tr.rows)), default=0.0)
        baseline = ctx.baseline
        ylim = metric_limits([p[1] for p in points], keep=[best, baseline and baseline["value"]])
        return {"metric": metric, "mode": mode, "all_t": [p[0] for p in points], "all_value": [p[1] for p in points],
                **steps, "end": end, "pauses": axis.marks(), "baseline": baseline, "ylim": ylim}

    def figure(self, data: dict, colors: dict) -> Any:
        fig, ax = new_figure(11, 3.6)
        scale, unit = time_unit(data["end"])
        ax.scatter(np.array(data["all_t"]) / scale, data["all_value"], s=10, color="0.6", alpha=0.5, label="a result")
        clipped_marks(ax, np.array(data["all_t"]) / scale, data["all_value"], data["ylim"], color="0.6", size=24)
        baseline_line(ax, data["baseline"])
        if data["t"]:
            ts = np.array(data["t"] + [max(data["end"], data["t"][-1])]) / scale
            ax.step(ts, data["value"] + [data["value"][-1]], where="post", color="C3", linewidth=2, label="best so far")
            ax.annotate(f"{data['value'][-1]:.4g} ({data['trial_id'][-1]})", (ts[-1], data["value"][-1]), textcoords="offset points",
                        xytext=(-4, 6), ha="right", fontsize=9, color="C3")
        pause_lines(ax, data["pauses"], scale)
        set_limits(ax, data["ylim"])
        ax.set_xlim(left=0)
        ax.set(xlabel=f"wall time since the first trial started ({unit})", ylabel=data["metric"])
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
        return fig

    def notes(self, data: dict) -> list[str]:
        empty = [] if data["t"] else ["No result with a metric value yet."]
        return empty + clip_notes(data["ylim"], "result") + baseline_notes(data["baseline"], data["metric"]) + pause_notes(data["pauses"])


def _curve(trial: R.TrialRecord, metric: str) -> tuple[list[int], list[float]]:
    """Epoch -> value, the last report of each epoch winning (after a resume an epoch can be reported twice)."""
    by_epoch = {r["training_iteration"]: r[metric] for r in trial.rows if usable(r, metric) and "training_iteration" in r}
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


class LearningCurves(Section):
    id = "learning-curves"
    title = "Learning curves"
    how = ("The metric per epoch of every trial, coloured by family. A cross marks a trial the scheduler stopped "
           "early; dotted lines are the epochs at which it stopped trials (its rungs).")

    def data(self, ctx: Context) -> dict[str, Any]:
        """`rungs`: the epochs at which the scheduler stopped some trial, read from the trials themselves (not from
        the scheduler's rule), so they show where Tune's scheduler did decide, whichever scheduler it was."""
        curves = []
        for t in ctx.trials:
            epochs, values = _curve(t, ctx.metric)
            curves.append({"trial_id": t.trial_id, "family": t.family, "status": ctx.status[t.trial_id], "epochs": epochs, "values": values})
        rungs = sorted({t.epochs for t in ctx.trials if ctx.status[t.trial_id] == R.STOPPED_EARLY})
        values = [v for c in curves for v in c["values"]]
        best = (min if ctx.mode == "min" else max)(values, default=None)
        baseline = ctx.baseline
        ylim = metric_limits(values, keep=[best, baseline and baseline["value"]])
        return {"metric": ctx.metric, "max_epochs": ctx.max_epochs, "rungs": rungs, "trials": curves, "baseline": baseline, "ylim": ylim}

    def figure(self, data: dict, colors: dict) -> Any:
        from matplotlib.collections import LineCollection

        fig, ax = new_figure(11, 4.6)
        for rung in data["rungs"]:
            ax.axvline(rung, color="0.5", linestyle=":", linewidth=1)
        # One collection of lines and one of points per family, not an artist per trial: a run of thousands of trials
        # draws in a second instead of a minute, and looks the same (a single epoch is a point, as before).
        drawn = [c for c in data["trials"] if c["epochs"]]
        for family in dict.fromkeys(c["family"] for c in drawn):
            color = colors.get(family, "0.4")
            curves = [c for c in drawn if c["family"] == family]
            lines = [np.column_stack([c["epochs"], c["values"]]) for c in curves if len(c["epochs"]) > 1]
            if lines:
                ax.add_collection(LineCollection(lines, colors=[color], alpha=0.75, linewidths=1.3), autolim=True)
            dotted = [c for c in curves if len(c["epochs"]) < 30]
            if dotted:  # (plot's "." marker: about a 6-point dot)
                ax.scatter([e for c in dotted for e in c["epochs"]], [v for c in dotted for v in c["values"]], marker=".",
                           s=36, color=color, alpha=0.75, linewidths=0)
            clipped_marks(ax, [e for c in curves for e in c["epochs"]], [v for c in curves for v in c["values"]], data["ylim"],
                          color=color, size=30)
            for status, (marker, size) in END_MARKERS.items():
                ended = [c for c in curves if c["status"] == status]
                if ended:
                    ax.scatter([c["epochs"][-1] for c in ended], [c["values"][-1] for c in ended], marker=marker, s=size, color=color,
                               edgecolor="black", linewidth=0.6, zorder=3)
        ax.autoscale_view()
        baseline_line(ax, data["baseline"])
        set_limits(ax, data["ylim"])
        ax.legend(handles=_legend(data, colors), fontsize=8, loc="upper right", ncols=2)
        ax.set(xlabel="epoch", ylabel=data["metric"])
        ax.set_xticks(range(1, data["max_epochs"] + 1) if data["max_epochs"] <= 30 else ax.get_xticks())
        ax.grid(alpha=0.3)
        return fig

    def notes(self, data: dict) -> list[str]:
        return clip_notes(data["ylim"], "epoch value") + baseline_notes(data["baseline"], data["metric"])


def _legend(data: dict, colors: dict) -> list:
    """The families and end markers that appear in the figure, and the rung line if there is one."""
    from matplotlib.lines import Line2D

    drawn = [c for c in data["trials"] if c["epochs"]]
    handles = [Line2D([], [], color=colors[f], linewidth=2, label=f) for f in colors if any(c["family"] == f for c in drawn)]
    handles += [Line2D([], [], linestyle="", marker=m, markeredgecolor="black", color="0.8", label=s) for s, (m, _) in END_MARKERS.items()
                if any(c["status"] == s for c in drawn)]
    if data["rungs"]:
        handles.append(Line2D([], [], color="0.5", linestyle=":", label="scheduler stopped trials here"))
    if data["baseline"]:
        handles.append(Line2D([], [], color="0.15", linestyle="--", label=f"baseline: {data['baseline']['name']} ({fmt(data['baseline']['value'])})"))
    return handles
