"""What the hyperparameters did: every trial across them (parallel coordinates), and how much each mattered (fANOVA)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from orchestrator.reading.report.context import Context
from orchestrator.reading.report.figures import (
    clip_notes,
    fmt,
    metric_limits,
    new_figure,
    new_panels,
)
from orchestrator.reading.report.sections.base import Section

MIN_FAMILY_TRIALS = 3  # a family's panel needs this many trials with a value: fewer lines show no pattern
DENSE_LINES = 200  # a panel with more lines draws them thinner, so that the best ones still stand out


def _axis(name: str, values: list, log_names: frozenset[str]) -> dict[str, Any]:
    """One parallel axis: numeric (its range, log if the space samples it so) or categorical (its labels)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    axis: dict[str, Any] = {"name": name, "kind": "numeric" if numeric else "categorical"}
    if numeric:
        axis.update(low=min(values), high=max(values), log=name in log_names and min(values) > 0)
    else:
        axis["labels"] = sorted({str(v) for v in values})
    return axis


class ParallelCoordinates(Section):
    id = "parallel-coordinates"
    title = "Hyperparameters"
    how = ("One panel per model family, with the hyperparameters that family has and that varied in it; one line per "
           "trial, coloured by the trial's best value (brightest is best; one scale for every panel); the best trial "
           "of each family is drawn thick.")

    def data(self, ctx: Context) -> dict[str, Any]:
        """`panels`: one per family with at least MIN_FAMILY_TRIALS scored trials, best family first. A panel's axes
        are the hyperparameters every one of its trials has and that differ between them (so no trial lacks a value
        and no axis is another family's), ordered by the importance section's ranking, then the family's own; the
        metric is drawn last, on `ylim` (`figures.metric_limits` of every scored trial's best value). `skipped`:
        family -> its number of scored trials, for the families with too few."""
        ranked = list(ctx.importance["importances"])
        metric, mode = ctx.metric, ctx.mode
        by_family: dict[str, list] = {}
        for t in ctx.scored:
            by_family.setdefault(t.family, []).append(t)
        best = {f: (min if mode == "min" else max)(t.best(metric, mode) for t in ts) for f, ts in by_family.items()}
        panels, skipped = [], {}
        for family in sorted(by_family, key=best.__getitem__, reverse=(mode == "max")):
            trials = by_family[family]
            if len(trials) < MIN_FAMILY_TRIALS:
                skipped[family] = len(trials)
                continue
            hps = [ctx.hp[t.trial_id] for t in trials]
            shared = [n for n in hps[0] if n != "family" and all(n in h for h in hps) and len({repr(h[n]) for h in hps}) > 1]
            names = sorted(shared, key=lambda n: (ranked.index(n) if n in ranked else len(ranked), not n.startswith("model/"), n))
            panels.append({
                "family": family, "axes": [_axis(n, [h[n] for h in hps], ctx.log_names) for n in names],
                "trials": [{"trial_id": t.trial_id, "values": [h[n] for n in names], "metric": t.best(metric, mode)}
                           for t, h in zip(trials, hps)],
            })
        every = [t.best(metric, mode) for t in ctx.scored]
        ylim = metric_limits(every, keep=[(min if mode == "min" else max)(every, default=None)])
        return {"metric": metric, "mode": mode, "panels": panels, "skipped": skipped, "ylim": ylim}

    def figure(self, data: dict, colors: dict) -> Any:
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.collections import LineCollection
        from matplotlib.colors import LogNorm, Normalize

        if not data["panels"]:
            return None
        lim = data["ylim"]
        metric_axis = {"name": data["metric"], "kind": "numeric", "log": lim["log"], "low": lim["low"], "high": lim["high"]}
        cmap = colormaps["viridis_r" if data["mode"] == "min" else "viridis"]
        norm = (LogNorm if lim["log"] else Normalize)(lim["low"], lim["high"], clip=True)
        fig, axs = new_panels(13, 0.9 + 3.3 * len(data["panels"]), len(data["panels"]))
        for ax, panel in zip(axs, data["panels"]):
            trials = panel["trials"]
            axes = panel["axes"] + [metric_axis]
            columns = [_positions(a, [t["values"][i] for t in trials]) for i, a in enumerate(panel["axes"])]
            heights = _positions(metric_axis, [t["metric"] for t in trials])
            columns.append(np.clip(heights, 0, 1))  # a value beyond the metric axis ends on its edge, marked there
            ys = np.array(columns).T
            for beyond, edge, marker in ((heights > 1, 1.0, "^"), (heights < 0, 0.0, "v")):
                if beyond.any():
                    ax.scatter([len(axes) - 1] * int(beyond.sum()), [edge] * int(beyond.sum()), marker=marker, s=36,
                               color="0.4", edgecolor="black", linewidth=0.5, zorder=4, clip_on=False)
            # Worst first, so the best lines are drawn on top; all but the best as one collection (an artist per
            # trial made a run of thousands of trials take many seconds to draw).
            order = sorted(range(len(trials)), key=lambda i: trials[i]["metric"], reverse=(data["mode"] == "min"))
            *rest, top = order
            xs = np.arange(len(axes), dtype=float)
            if len(axes) == 1:  # one axis: a dot per trial
                ax.scatter(np.zeros(len(rest)), ys[rest, 0], s=36, color=cmap(norm([trials[i]["metric"] for i in rest])), alpha=0.75)
                ax.scatter([0.0], ys[top, :1], s=36, color=cmap(norm(trials[top]["metric"])), zorder=3)
            else:
                ax.add_collection(LineCollection([np.column_stack([xs, ys[i]]) for i in rest], colors=cmap(norm([trials[i]["metric"] for i in rest])),
                                                 linewidths=1.3 if len(rest) <= DENSE_LINES else 0.7, alpha=0.75))
                ax.plot(xs, ys[top], color=cmap(norm(trials[top]["metric"])), linewidth=3)
            _draw_axes(ax, axes)
            ax.set_title(f"{panel['family']} ({len(trials)} trials)", loc="left", fontsize=10, color=colors.get(panel["family"], "black"))
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axs, label=data["metric"], pad=0.01)
        return fig

    def notes(self, data: dict) -> list[str]:
        notes = []
        if data["skipped"]:
            few = ", ".join(f"{f} ({n})" for f, n in data["skipped"].items())
            notes.append(f"No panel for families with fewer than {MIN_FAMILY_TRIALS} trials with a value: {few}.")
        if data["panels"] and all(not p["axes"] for p in data["panels"]):
            notes.append("No hyperparameter varied within a family.")
        return notes + clip_notes(data["ylim"], "trial")


def _positions(axis: dict, values: list) -> np.ndarray:
    """Each trial's height on one parallel axis: in [0, 1] within its range (beyond it on a clipped metric axis)."""
    out = []
    for v in values:
        if axis["kind"] == "categorical":
            labels = axis["labels"]
            out.append(labels.index(str(v)) / (len(labels) - 1) if len(labels) > 1 else 0.5)
        else:
            lo, hi, x = axis["low"], axis["high"], v
            if axis["log"]:
                lo, hi, x = math.log10(lo), math.log10(hi), math.log10(v)
            out.append((x - lo) / (hi - lo) if hi > lo else 0.5)
    return np.array(out, dtype=float)


def _ticks(axis: dict) -> list[tuple[float, str]]:
    """(height, label) of the labels on one parallel axis: every category, or the range (and its middle on a log axis)."""
    if axis["kind"] == "categorical":
        n = len(axis["labels"])
        return [(k / (n - 1) if n > 1 else 0.5, label) for k, label in enumerate(axis["labels"])]
    ticks = [(0.0, fmt(axis["low"])), (1.0, fmt(axis["high"]))]
    if axis["log"]:
        ticks.append((0.5, fmt(math.sqrt(axis["low"] * axis["high"]))))
    return ticks


def _draw_axes(ax, axes: list[dict]) -> None:
    """The vertical axes with their labels; no y axis of its own (each parallel axis has its own scale)."""
    for x, a in enumerate(axes):
        ax.axvline(x, color="0.25", linewidth=1)
        for y, label in _ticks(a):
            ax.annotate(label, (x, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xticks(range(len(axes)), [a["name"] + (" (log)" if a.get("log") else "") for a in axes], rotation=25, ha="right", fontsize=9)
    ax.set_yticks([])
    ax.set_xlim(-0.2, max(len(axes) - 0.6, 0.6))
    ax.set_ylim(-0.08, 1.08)
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
