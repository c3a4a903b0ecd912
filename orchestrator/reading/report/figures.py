"""Helpers the sections' figures share: a headless figure, its PNG as an embeddable <img>, family colours, number
and time formatting, the marks of a cut-out pause on a time axis, and the limits of a metric axis (`metric_limits`:
set by the values that matter, not by a few diverged ones, which are drawn clipped at the edge and counted)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from trainables.rows import usable_value

# A metric axis's limits (`metric_limits`). A value is an outlier when it lies more than FENCE spreads beyond the
# quartiles (Tukey's "far out" fence); the spread is the interquartile range, in decades when every value is
# positive, and at least MIN_SPREAD_DECADES there, so that trials that all converged to nearly one value do not
# make their own first epochs outliers (on positive values the fence is then at least 10**0.75 = 5.6 times the
# upper quartile). The axis is logarithmic when the values it shows span more than LOG_DECADES decades.
FENCE = 3.0
MIN_SPREAD_DECADES = 0.25
LOG_DECADES = 1.5
MARGIN = 0.05  # of the shown range, above and below


def new_figure(width: float, height: float):
    # A bare Figure (no pyplot): no global state, no GUI backend, safe in a headless process.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def new_panels(width: float, height: float, n: int):
    """A bare Figure with `n` panels stacked vertically (a list of axes)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, list(fig.subplots(n, 1, squeeze=False)[:, 0])


def png_base64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def img_html(fig, alt: str) -> str:
    """The figure as an <img> that carries its own PNG, so the page opens offline."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64(fig)}">'


def family_colors(families: list[str]) -> dict[str, Any]:
    """One tab10 colour per family, by position: a family keeps its colour in every figure."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return {f: palette[i % len(palette)] for i, f in enumerate(families)}


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def time_unit(span: float) -> tuple[float, str]:
    """(seconds per unit, unit) that keeps a time axis of `span` seconds readable."""
    return (3600.0, "h") if span > 3 * 3600 else (60.0, "min") if span > 600 else (1.0, "s")


def pause_lines(ax, pauses: list[dict], scale: float) -> None:
    """A dashed line where each cut-out pause sits on the time axis, labelled with how long it was."""
    for p in pauses:
        ax.axvline(p["at"] / scale, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"resumed (+{p['hidden_s'] / 60:.0f} min)", (p["at"] / scale, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8, color="0.3")


def metric_limits(values: Iterable[float], keep: Iterable[float | None] = ()) -> dict[str, Any]:
    """The limits of a metric axis: `{"low", "high", "log", "above", "below"}` (plain values, for the data model).

    Only usable values count (`trainables.rows.usable_value`: NaN, inf and the divergence penalty are left out).
    The axis spans the values within the outlier fences (see FENCE) and every value of `keep` (the best value, a
    baseline line: what must stay visible), plus a MARGIN; `above`/`below` count the usable values outside it,
    which the figures draw clipped at the edge (`clipped_marks`) and their notes count (`clip_notes`). `log`:
    every value is positive and the shown range spans more than LOG_DECADES decades. No usable value: low and
    high are None (matplotlib's own limits).
    """
    finite = np.array([x for v in values if (x := usable_value({"v": v}, "v")) is not None], dtype=float)
    kept = [x for v in keep if v is not None and (x := usable_value({"v": v}, "v")) is not None]
    out: dict[str, Any] = {"low": None, "high": None, "log": False, "above": 0, "below": 0}
    if not finite.size and not kept:
        return out
    positive = bool((finite > 0).all()) and all(k > 0 for k in kept)
    inside = finite
    if finite.size:
        scaled = np.log10(finite) if positive else finite
        q1, q3 = np.quantile(scaled, [0.25, 0.75])
        spread = max(q3 - q1, MIN_SPREAD_DECADES) if positive else q3 - q1
        if spread > 0:  # (linear values mostly equal: no spread to judge outliers by, none is one)
            inside = finite[(scaled >= q1 - FENCE * spread) & (scaled <= q3 + FENCE * spread)]
    low, high = float(min(list(inside) + kept)), float(max(list(inside) + kept))
    log = positive and high / low > 10 ** LOG_DECADES
    if log:
        pad = MARGIN * math.log10(high / low)
        low, high = low / 10 ** pad, high * 10 ** pad
    else:
        pad = MARGIN * (high - low) if high > low else 0.05 * abs(high) or 0.5
        low, high = low - pad, high + pad
    out.update(low=low, high=high, log=log, above=int((finite > high).sum()), below=int((finite < low).sum()))
    return out


def set_limits(ax, limits: dict[str, Any]) -> None:
    """Puts `metric_limits` on a y axis (its scale, then its range)."""
    if limits["log"]:
        ax.set_yscale("log")
    if limits["low"] is not None:
        ax.set_ylim(limits["low"], limits["high"])


def clipped_marks(ax, x, y, limits: dict[str, Any], color: Any = "0.3", size: float = 36) -> None:
    """Values beyond the axis as triangles on its edge (pointing the way they went), drawn over the frame."""
    if limits["low"] is None:
        return
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    for mask, edge, marker in ((y > limits["high"], limits["high"], "^"), (y < limits["low"], limits["low"], "v")):
        if mask.any():
            ax.scatter(x[mask], np.full(mask.sum(), edge), marker=marker, s=size, color=color, edgecolor="black",
                       linewidth=0.5, clip_on=False, zorder=4)


def clip_notes(limits: dict[str, Any], what: str = "value") -> list[str]:
    """The caption's count of the values drawn clipped, and why the axis is logarithmic when it is."""
    notes = []
    for n, side, mark in ((limits["above"], "above", "top"), (limits["below"], "below", "bottom")):
        if n:
            notes.append(f"{n} {what}{'s' if n != 1 else ''} {side} the axis, clipped: drawn as triangles on its {mark} "
                         f"edge (the axis is set by the other values, so that a few diverged ones do not flatten the rest).")
    if limits["log"]:
        notes.append(f"Logarithmic axis: the values shown span more than {LOG_DECADES:g} decades.")
    return notes


def baseline_line(ax, baseline: dict[str, Any] | None) -> None:
    """The best baseline (`Context.baseline`) as a labelled dashed horizontal line (in the legend too)."""
    if baseline:
        ax.axhline(baseline["value"], color="0.15", linestyle="--", linewidth=1.2, zorder=2,
                   label=f"baseline: {baseline['name']} ({fmt(baseline['value'])})")


def baseline_notes(baseline: dict[str, Any] | None, metric: str) -> list[str]:
    if not baseline:
        return []
    return [f"Dashed line: the task's best baseline, {baseline['name']}, at {metric} {fmt(baseline['value'])} on the validation "
            "split (baselines.json): trials on its better side beat a model that needs no search."]
