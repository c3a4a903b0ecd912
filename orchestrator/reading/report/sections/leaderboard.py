"""The leaderboard: the rows `orchestrator best` prints (`results.leaderboard_rows`), as a table, under the best
model's validation and test metrics."""

from __future__ import annotations

import html
from typing import Any

from orchestrator.reading import results as R
from orchestrator.reading.report.context import Context
from orchestrator.reading.report.figures import fmt
from orchestrator.reading.report.sections.base import Section


def _e(value: Any) -> str:
    return html.escape(fmt(value))


class Leaderboard(Section):
    id = "leaderboard"
    title = "Leaderboard"
    how = "Trials ranked by their best value; the best model's test metric is measured on its exported checkpoint."

    def data(self, ctx: Context) -> dict[str, Any]:
        """`rows`: every trial, best first, with all its hyperparameters; `columns`: those the table shows (the ones
        that varied); `best`: best/metrics.json, None until the run has finished."""
        rows = R.leaderboard_rows(ctx.trials, ctx.metric, ctx.mode, ctx.max_epochs)
        return {"metric": ctx.metric, "mode": ctx.mode, "columns": ctx.varying or ["family"], "rows": rows, "best": ctx.best_model}

    def body(self, data: dict, colors: dict) -> str:
        best = data["best"]
        parts = [_best_line(best)]
        head = ["#", "trial", "family", "status", "epochs", f"best {data['metric']}", "hyperparameters that varied"]
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
        for row in data["rows"]:
            top = best is not None and row["trial_id"] == best["trial_id"]
            parts.append(f'<tr{" class=top" if top else ""}>{_cells(row, data["columns"])}</tr>')
        parts.append("</table>")
        return "\n".join(parts)


def _best_line(best: dict | None) -> str:
    if not best:
        return '<p class="note">No exported best model yet: the test metric appears once the run has finished.</p>'
    shown = ", ".join(f"{k} <b>{v:.4g}</b>" for k, v in best["metrics"].items())
    return (f'<p class="best">Best model: trial <b>{html.escape(best["trial_id"])}</b> ({html.escape(best["family"])}), '
            f"epoch {best['epoch']}: {shown}.</p>") + _steps_table(best.get("per_step") or {})


def _steps_table(per_step: dict[str, list[float]]) -> str:
    """A forecast over a horizon: the best model's error at each step (validation and test), one column a step."""
    names = [k for k in ("val_rmse", "test_rmse", "val_mae", "test_mae") if per_step.get(k)]
    if not names:
        return ""
    steps = len(per_step[names[0]])
    head = "<tr><th>error at step</th>" + "".join(f"<th>{h + 1}</th>" for h in range(steps)) + "</tr>"
    rows = "".join(f"<tr><td>{n}</td>" + "".join(f'<td class="num">{v:.4g}</td>' for v in per_step[n]) + "</tr>" for n in names)
    return f"<table>{head}{rows}</table>"


def _cells(row: dict, columns: list[str]) -> str:
    cells = [row["rank"], row["trial_id"], row["family"], row["status"], row["epochs"], row["best"]]
    tds = "".join(f'<td class="num">{_e(c)}</td>' if isinstance(c, (int, float)) else f"<td>{_e(c)}</td>" for c in cells)
    # One wrapping cell rather than a column each: a conditional space has many, mostly empty per family.
    hp = row["hyperparameters"]
    shown = " ".join(f"{k.removeprefix('model/')}={fmt(hp.get(k))}" for k in columns if k != "family" and hp.get(k) is not None)
    return tds + f'<td class="hp">{html.escape(shown)}</td>'
