"""Helpers the sections' figures share: a headless figure, its PNG as an embeddable <img>, family colours, number
and time formatting, and the marks of a cut-out pause on a time axis."""

from __future__ import annotations

import base64
import html
import io
from typing import Any


def new_figure(width: float, height: float):
    # A bare Figure (no pyplot): no global state, no GUI backend, safe in a headless process.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


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
