"""What the hyperparameters did: every trial across them (parallel coordinates), and how much each mattered (fANOVA)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from orchestrator.reading.report.context import Context
from orchestrator.reading.report.figures import fmt, new_figure
from orchestrator.reading.report.sections.base import Section

MISSING_Y = -0.12  # where a trial without a hyperparameter (another family's) sits on its axis


def _axis(name: str, values: list, log_names: frozenset[str]) -> dict[str, Any]:
    """One parallel axis: numeric (its range, log if the space samples it so) or categorical (its labels)."""
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    axis = {"name": name, "kind": "numeric" if numeric else "categorical", "missing": len(present) < len(values)}
    if numeric:
        axis.update(low=min(present), high=max(present), log=name in log_names and min(present) > 0)
    else:
        axis["labels"] = sorted({str(v) for v in present})
    return axis


class ParallelCoordinates(Section):
    id = "parallel-coordinates"
    title = "Hyperparameters"
    how = ("One line per trial across the hyperparameters that varied, coloured by the trial's best value "
           "(brightest is best); the best trial is drawn thick.")

    def data(self, ctx: Context) -> dict[str, Any]:
        """Axes: the family, then the hyperparameters by importance (the importance section's ranking), then the rest;
        the metric is drawn last."""
        ranked = list(ctx.importance["importances"])
        names = sorted(ctx.varying, key=lambda n: (n != "family", ranked.index(n) if n in ranked else len(ranked)))
        axes = [_axis(n, [ctx.hp[t.trial_id].get(n) for t in ctx.scored], ctx.log_names) for n in names]
        lines = [{"trial_id": t.trial_id, "values": [ctx.hp[t.trial_id].get(n) for n in names], "metric": t.best(ctx.metric, ctx.mode)}
                 for t in ctx.scored]
        return {"metric": ctx.metric, "mode": ctx.mode, "axes": axes, "trials": lines}

    def figure(self, data: dict, colors: dict) -> Any:
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        trials = data["trials"]
        metric_axis = {"name": data["metric"], "kind": "numeric", "log": False, "missing": False,
                       "low": min((t["metric"] for t in trials), default=0.0), "high": max((t["metric"] for t in trials), default=1.0)}
        axes = data["axes"] + [metric_axis]
        fig, ax = new_figure(13, 4.8)
        columns = [_positions(a, [t["values"][i] for t in trials]) for i, a in enumerate(data["axes"])]
        columns.append(_positions(metric_axis, [t["metric"] for t in trials]))
        ys = np.array(columns).T if trials else np.zeros((0, len(axes)))
        cmap = colormaps["viridis_r" if data["mode"] == "min" else "viridis"]
        norm = Normalize(metric_axis["low"], metric_axis["high"])
        # Worst first, so the best lines are drawn on top.
        order = sorted(range(len(trials)), key=lambda i: trials[i]["metric"], reverse=(data["mode"] == "min"))
        for rank, i in enumerate(order):
            top = rank == len(order) - 1
            ax.plot(range(len(axes)), ys[i], color=cmap(norm(trials[i]["metric"])), linewidth=3 if top else 1.3, alpha=1 if top else 0.75)
        _draw_axes(ax, axes)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=data["metric"], pad=0.01)
        return fig

    def notes(self, data: dict) -> list[str]:
        return [] if data["axes"] else ["No hyperparameter varied between the trials with results."]


def _positions(axis: dict, values: list) -> np.ndarray:
    """Each trial's height on one parallel axis, in [0, 1]; a trial without this hyperparameter sits at MISSING_Y."""
    out = []
    for v in values:
        if v is None:
            out.append(MISSING_Y)
        elif axis["kind"] == "categorical":
            labels = axis["labels"]
            out.append(labels.index(str(v)) / (len(labels) - 1) if len(labels) > 1 else 0.5)
        else:
            lo, hi, x = axis["low"], axis["high"], v
            if axis["log"]:
                lo, hi, x = math.log10(lo), math.log10(hi), math.log10(v)
            out.append((x - lo) / (hi - lo) if hi > lo else 0.5)
    return np.array(out)


def _ticks(axis: dict) -> list[tuple[float, str]]:
    """(height, label) of the labels on one parallel axis: every category, or the range (and its middle on a log axis)."""
    if axis["kind"] == "categorical":
        n = len(axis["labels"])
        ticks = [(k / (n - 1) if n > 1 else 0.5, label) for k, label in enumerate(axis["labels"])]
    else:
        ticks = [(0.0, fmt(axis["low"])), (1.0, fmt(axis["high"]))]
        if axis["log"]:
            ticks.append((0.5, fmt(math.sqrt(axis["low"] * axis["high"]))))
    return ticks + [(MISSING_Y, "n/a")] * axis["missing"]


def _draw_axes(ax, axes: list[dict]) -> None:
    """The vertical axes with their labels; no y axis of its own (each parallel axis has its own scale)."""
    for x, a in enumerate(axes):
        ax.axvline(x, color="0.25", linewidth=1)
        for y, label in _ticks(a):
            ax.annotate(label, (x, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xticks(range(len(axes)), [a["name"] + (" (log)" if a.get("log") else "") for a in axes], rotation=25, ha="right", fontsize=9)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(axes) - 0.6)
    ax.set_ylim(-0.2, 1.08)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


class Importance(Section):
    id = "importance"
    title = "Hyperparameter importance"
    how = ("The share of the variation of the trials' best values that each hyperparameter explains, by fANOVA "
           "(Optuna's evaluator, a random forest over the trials).")

    def data(self, ctx: Context) -> dict[str, Any]:
        return ctx.importance  # computed once in the context: the parallel coordinates are ordered by it too

    def figure(self, data: dict, colors: dict) -> Any:
        if not data["importances"]:
            return None
        items = list(data["importances"].items())[::-1]  # most important on top
        fig, ax = new_figure(11, 0.9 + 0.38 * max(1, len(items)))
        ax.barh([k for k, _ in items], [v for _, v in items], color="C0")
        for y, (_, v) in enumerate(items):
            ax.annotate(f"{v:.0%}", (v, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
        ax.set(xlabel=f"share of the variance of the best {data['metric']} (fANOVA)", xlim=(0, 1.08))
        ax.grid(alpha=0.3, axis="x")
        return fig

    def notes(self, data: dict) -> list[str]:
        notes = []
        if data["note"]:
            notes.append(f"Not computed: {data['note']}.")
        if data["conditional"]:
            notes.append(f"Left out (only some families have them): {', '.join(data['conditional'])}.")
        if data["importances"]:
            notes.append(f"Over {data['n_trials']} trials, each counted with its best {data['metric']} "
                         "(early-stopped ones at the epoch they reached).")
        return notes
