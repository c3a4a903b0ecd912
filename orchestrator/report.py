"""`orchestrator report`: one self-contained HTML page that shows how a search went.

Built in two steps. `build_report(run_dir)` reads the run directory (through `results`, without
starting Ray) into a plain data model: a dict of sections, each holding the numbers its figure shows.
`render_html(model)` draws each section with matplotlib and embeds it as a base64 PNG, so the page
opens offline and can be attached to a CI run or mailed. Tests check the data model against the run's
own files, and the HTML for every section.

It works on a finished run, on one still running (a trial whose last result is not final counts as
running) and on one that was interrupted and resumed: a trial's results before and after the resume
become two bars on the timeline, and the pause between the sessions is cut out of the time axis.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import results as R
from trainables import constants as C

RUNNING = R.UNFINISHED  # no final result yet: still running, or interrupted and not resumed (yet)
CLOCK_S = 1.0  # Tune's own timestamps are whole seconds: two times closer than this cannot be ordered
PAUSE_S = 60.0  # nothing running for this long means the experiment itself was stopped (then resumed)
MIN_TRIALS_FOR_IMPORTANCE = 5  # fANOVA fits a forest to (hyperparameters -> metric); fewer points say nothing
# Optuna's default of 64 trees gave a different top hyperparameter for each seed on the 16-trial quickstart;
# with 512 the top three stayed the same across seeds, for about a second of fitting.
FANOVA_TREES = 512
REPORT_FILE = "report.html"

SECTIONS = {  # id -> (title, how to read it)
    "best-so-far": ("Best so far", "Every reported result (grey dots) and the best value reached so far (line), against wall time."),
    "learning-curves": ("Learning curves", "The metric per epoch of every trial, coloured by family. A cross marks a trial the "
                        "scheduler stopped early; dotted lines are the scheduler's rungs, where it decides."),
    "families": ("Model families", "Each trial's best value, grouped by model family (box: quartiles; dots: trials)."),
    "parallel-coordinates": ("Hyperparameters", "One line per trial across the hyperparameters that varied, coloured by the "
                             "trial's best value (brightest is best); the best trial is drawn thick."),
    "importance": ("Hyperparameter importance", "The share of the variation of the trials' best values that each "
                   "hyperparameter explains, by fANOVA (Optuna's evaluator, a random forest over the trials)."),
    "timeline": ("Timeline", "Each trial as a bar on the worker slot that ran it; white gaps are idle slots."),
    "leaderboard": ("Leaderboard", "Trials ranked by their best value; the best model's test metric is measured on its exported checkpoint."),
}


# ------------------------------------------------------------------------------------ reading results


def trial_status(trial: R.TrialRecord, max_epochs: int) -> str:
    """finished / stopped early / failed / diverged, or running (unfinished) while its last result is not a final one."""
    return trial.status(max_epochs)


def usable(row: dict, metric: str) -> bool:
    """A result whose metric can be compared (not missing, not from a diverged epoch, finite)."""
    value = row.get(metric)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and not row.get(C.DIVERGED) and math.isfinite(value)


def timed_rows(rows: list[dict]) -> list[tuple[float, int, dict]]:
    """(wall time, session, row) of each result; a session starts at a trial's first result and after each restore.

    The trainable stamps each result with the exact time its epoch ended. Tune's own `timestamp` (runs
    written before that) is whole seconds: it only bounds a result to its second, and within that second
    the trial's own clock (`time_since_restore`, counted from the start of its session) places it.
    """
    out: list[tuple[float, int, dict]] = []
    start, session, last_iter = 0.0, -1, math.inf
    for row in rows:
        ts = row.get("timestamp")
        if not isinstance(ts, (int, float)):
            continue
        since = float(row.get("time_since_restore", row.get("time_total_s")) or 0.0)
        iteration = row.get("iterations_since_restore", row.get("training_iteration", 0))
        if session < 0 or iteration <= last_iter:  # the first result, or the counter restarted: a restore
            session, start = session + 1, ts + 0.5 - since
        last_iter = iteration
        exact = isinstance(ts, float) and not ts.is_integer()
        out.append((ts if exact else min(max(start + since, ts), ts + 1.0), session, row))
    return out


def sessions(rows: list[dict]) -> list[tuple[float, float]]:
    """(start, end) wall times of each session of a trial: from its first result minus that epoch's time, to its last result."""
    spans: dict[int, list[float]] = {}
    for t, s, row in timed_rows(rows):
        if s not in spans:
            spans[s] = [t - float(row.get("time_this_iter_s") or 0.0), t]
        spans[s][1] = t
    return [(a, b) for a, b in spans.values()]


class TimeAxis:
    """Wall time -> seconds since the first trial started, with pauses (nothing running for PAUSE_S) cut out."""

    def __init__(self, spans: list[tuple[float, float]]):
        spans = sorted(spans)
        self.origin = spans[0][0] if spans else 0.0
        self.pauses: list[tuple[float, float]] = []  # wall (start, end) of each stretch with nothing running
        reach = self.origin
        for start, end in spans:
            if start - reach > PAUSE_S:
                self.pauses.append((reach, start))
            reach = max(reach, end)

    def __call__(self, t: float) -> float:
        cut = sum(min(end, max(t, start)) - start for start, end in self.pauses)
        return t - self.origin - cut

    def marks(self) -> list[dict[str, float]]:
        """Where each cut-out pause sits on the axis, and how long it was."""
        return [{"at": self(end), "hidden_s": end - start} for start, end in self.pauses]


def better(a: float, b: float | None, mode: str) -> bool:
    return b is None or (a < b if mode == "min" else a > b)


def asha_rungs(scheduler: dict) -> list[int | float]:
    """The epochs at which ASHA compares trials (Ray's rule: grace_period * reduction_factor^k up to max_epochs)."""
    if scheduler.get("kind") != "asha":
        return []
    low, high, rf = scheduler["grace_period"], scheduler["max_epochs"], scheduler["reduction_factor"]
    count = int(np.log(high / low) / np.log(rf) + 1)
    rungs = [low * rf**k for k in range(count)]
    return [int(r) if float(r).is_integer() else r for r in rungs]


def log_scaled(space) -> set[str]:
    """Flat hyperparameter names that the search space samples on a log scale."""
    from search_spaces import LogUniform, QLogUniform

    names = {k for k, d in space.train.items() if isinstance(d, (LogUniform, QLogUniform))}
    for sub in space.families.values():
        names |= {f"model/{k}" for k, d in sub.items() if isinstance(d, (LogUniform, QLogUniform))}
    return names


# ------------------------------------------------------------------------------------------ sections


def _best_so_far(trials, metric: str, mode: str, axis: TimeAxis) -> dict:
    points = sorted((axis(t), row[metric], tr.trial_id) for tr in trials for t, _, row in timed_rows(tr.rows) if usable(row, metric))
    steps: dict[str, list] = {"t": [], "value": [], "trial_id": []}
    best = None
    for t, value, trial_id in points:
        if better(value, best, mode):
            best = value
            for key, v in zip(steps, (t, value, trial_id)):
                steps[key].append(v)
    end = max((axis(b) for tr in trials for _, b in sessions(tr.rows)), default=0.0)
    return {"metric": metric, "mode": mode, "all_t": [p[0] for p in points], "all_value": [p[1] for p in points],
            **steps, "end": end, "pauses": axis.marks()}


def _curve(trial: R.TrialRecord, metric: str) -> tuple[list[int], list[float]]:
    """Epoch -> value, the last report of each epoch winning (after a resume an epoch can be reported twice)."""
    by_epoch = {r["training_iteration"]: r[metric] for r in trial.rows if usable(r, metric) and "training_iteration" in r}
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


def _learning_curves(trials, metric: str, status: dict, scheduler: dict) -> dict:
    curves = []
    for t in trials:
        epochs, values = _curve(t, metric)
        curves.append({"trial_id": t.trial_id, "family": t.family, "status": status[t.trial_id], "epochs": epochs, "values": values})
    return {"metric": metric, "max_epochs": scheduler["max_epochs"], "rungs": asha_rungs(scheduler), "trials": curves}


def _families(trials, metric: str, mode: str, status: dict, family_order: list[str]) -> dict:
    values: dict[str, list[float]] = {}
    ids: dict[str, list[str]] = {}
    for t in trials:
        best = t.best(metric, mode)
        if best is not None:
            values.setdefault(t.family, []).append(best)
            ids.setdefault(t.family, []).append(t.trial_id)
    ranked = sorted(values, key=lambda f: float(np.median(values[f])), reverse=(mode == "max"))
    return {"metric": metric, "mode": mode, "order": ranked, "values": values, "trial_ids": ids,
            "status": {f: [status[i] for i in ids[f]] for f in ids}, "untried": [f for f in family_order if f not in values]}


def _varying(scored, hp: dict) -> list[str]:
    """Hyperparameter names whose value differs between the scored trials: family, then the model's, then training."""
    names = {k for t in scored for k in hp[t.trial_id]}
    varying = [n for n in names if len({repr(hp[t.trial_id].get(n)) for t in scored}) > 1]
    return sorted(varying, key=lambda n: (n != "family", not n.startswith("model/"), n))


def _parallel(scored, metric: str, mode: str, hp: dict, log_names: set[str], ranked: list[str]) -> dict:
    """Axes: the family, then the hyperparameters by importance (`ranked`), then the rest; the metric is drawn last."""
    names = sorted(_varying(scored, hp), key=lambda n: (n != "family", ranked.index(n) if n in ranked else len(ranked)))
    axes = []
    for name in names:
        values = [hp[t.trial_id].get(name) for t in scored]
        present = [v for v in values if v is not None]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
        axis = {"name": name, "kind": "numeric" if numeric else "categorical", "missing": len(present) < len(values)}
        if numeric:
            axis.update(low=min(present), high=max(present), log=name in log_names and min(present) > 0)
        else:
            axis["labels"] = sorted({str(v) for v in present})
        axes.append(axis)
    lines = [{"trial_id": t.trial_id, "values": [hp[t.trial_id].get(n) for n in names], "metric": t.best(metric, mode)} for t in scored]
    return {"metric": metric, "mode": mode, "axes": axes, "trials": lines}


def _distribution(values: list, log: bool):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return FloatDistribution(float(min(values)), float(max(values)), log=log and min(values) > 0)
    return CategoricalDistribution(sorted(set(values), key=str))


def _importance(scored, metric: str, mode: str, hp: dict, log_names: set[str]) -> dict:
    """fANOVA importance (Optuna) over the hyperparameters every scored trial has; conditional ones are listed apart.

    The target is each trial's best value, the number the leaderboard ranks by; trials ASHA stopped early
    count with the value they reached, so this says what mattered for doing well under this schedule.
    """
    out: dict[str, Any] = {"metric": metric, "method": "fANOVA (optuna.importance.FanovaImportanceEvaluator)",
                           "n_trials": len(scored), "importances": {}, "conditional": [], "note": None}
    varying = _varying(scored, hp)
    out["conditional"] = [n for n in varying if any(n not in hp[t.trial_id] for t in scored)]
    names = [n for n in varying if n not in out["conditional"]]
    if len(scored) < MIN_TRIALS_FOR_IMPORTANCE or not names:
        out["note"] = (f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} trials with a {metric} value and one hyperparameter "
                       f"that varied; this run has {len(scored)} and {len(names)}")
        return out
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scored = sorted(scored, key=lambda t: t.trial_id)  # the forest depends on row order: same run, same numbers
    dists = {n: _distribution([hp[t.trial_id][n] for t in scored], n in log_names) for n in names}
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    study.add_trials([
        optuna.trial.create_trial(params={n: hp[t.trial_id][n] for n in names}, distributions=dists, value=t.best(metric, mode))
        for t in scored
    ])
    importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(n_trees=FANOVA_TREES, seed=0), params=names)
    out["importances"] = {k: float(v) for k, v in importances.items()}
    return out


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


def _timeline(trials, status: dict, axis: TimeAxis, max_concurrent: int | None) -> dict:
    bars = [
        {"trial_id": t.trial_id, "family": t.family, "status": status[t.trial_id], "start": axis(a), "end": axis(b)}
        for t in trials
        for a, b in sessions(t.rows)
    ]
    slots = _slots(bars, max_concurrent)
    span = max((b["end"] for b in bars), default=0.0) - min((b["start"] for b in bars), default=0.0)
    busy = sum(b["end"] - b["start"] for b in bars)
    return {"bars": bars, "slots": slots, "max_concurrent": max_concurrent, "span_s": span, "busy_s": busy,
            "utilization": min(1.0, busy / (slots * span)) if slots and span > 0 else None, "pauses": axis.marks()}


def _leaderboard(trials, metric: str, mode: str, status: dict, hp: dict, run_dir: Path) -> dict:
    board = R.leaderboard(trials, metric, mode)
    shown = _varying([t for t in board if t.best(metric, mode) is not None], hp) or ["family"]
    rows = [
        {"rank": i + 1, "trial_id": t.trial_id, "family": t.family, "status": status[t.trial_id], "epochs": t.epochs,
         "best": t.best(metric, mode), "hparams": {k: hp[t.trial_id].get(k) for k in shown}}
        for i, t in enumerate(board)
    ]
    best_file = run_dir / R.BEST_DIR / R.METRICS_FILE
    best = json.loads(best_file.read_text()) if best_file.is_file() else None
    return {"metric": metric, "mode": mode, "columns": shown, "rows": rows, "best": best}


def build_report(run_dir: Path) -> dict[str, Any]:
    """The report's data model: a summary and one entry per section, with the numbers each figure shows."""
    from orchestrator.runner import experiment_from_run
    from orchestrator.tuning import planned_trials

    run_dir = R.check_run_dir(Path(run_dir)).resolve()
    raw = R.read_experiment(run_dir)
    exp = experiment_from_run(run_dir)
    metric, mode, scheduler = raw["metric"], raw["mode"], raw["scheduler"]
    trials = R.load_trials(run_dir)
    status = {t.trial_id: trial_status(t, scheduler["max_epochs"]) for t in trials}
    scored = [t for t in trials if t.best(metric, mode) is not None]
    hp = {t.trial_id: t.hparams() for t in trials}
    axis = TimeAxis([s for t in trials for s in sessions(t.rows)])
    log_names = log_scaled(exp.space)
    counts: dict[str, int] = {}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    finished = (run_dir / R.BEST_DIR / R.METRICS_FILE).is_file() and RUNNING not in counts
    importance = _importance(scored, metric, mode, hp, log_names)
    return {
        "summary": {
            "name": run_dir.name, "run_dir": str(run_dir), "task": raw["task"]["kind"], "metric": metric, "mode": mode,
            "searcher": raw["searcher"], "scheduler": scheduler, "planned": planned_trials(exp), "trials": len(trials),
            "status_counts": counts, "state": "finished" if finished else "in progress (or interrupted)",
            "families": list(exp.space.families), "generated": dt.datetime.now().isoformat(timespec="seconds"),
        },
        "best-so-far": _best_so_far(trials, metric, mode, axis),
        "learning-curves": _learning_curves(trials, metric, status, scheduler),
        "families": _families(trials, metric, mode, status, list(exp.space.families)),
        "parallel-coordinates": _parallel(scored, metric, mode, hp, log_names, list(importance["importances"])),
        "importance": importance,
        "timeline": _timeline(trials, status, axis, raw.get("max_concurrent")),
        "leaderboard": _leaderboard(trials, metric, mode, status, hp, run_dir),
    }


# ------------------------------------------------------------------------------------------ figures


def _figure(width: float, height: float):
    # A bare Figure (no pyplot): no global state, no GUI backend, safe in a headless process.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _colors(families: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return {f: palette[i % len(palette)] for i, f in enumerate(families)}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _time_unit(span: float) -> tuple[float, str]:
    return (3600.0, "h") if span > 3 * 3600 else (60.0, "min") if span > 600 else (1.0, "s")


def _pause_lines(ax, pauses: list[dict], scale: float) -> None:
    for p in pauses:
        ax.axvline(p["at"] / scale, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"resumed (+{p['hidden_s'] / 60:.0f} min)", (p["at"] / scale, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8, color="0.3")


def plot_best_so_far(data: dict, colors: dict) -> Any:
    fig, ax = _figure(11, 3.6)
    scale, unit = _time_unit(data["end"])
    ax.scatter(np.array(data["all_t"]) / scale, data["all_value"], s=10, color="0.6", alpha=0.5, label="a result")
    if data["t"]:
        ts = np.array(data["t"] + [max(data["end"], data["t"][-1])]) / scale
        ax.step(ts, data["value"] + [data["value"][-1]], where="post", color="C3", linewidth=2, label="best so far")
        ax.annotate(f"{data['value'][-1]:.4g} ({data['trial_id'][-1]})", (ts[-1], data["value"][-1]), textcoords="offset points",
                    xytext=(-4, 6), ha="right", fontsize=9, color="C3")
    _pause_lines(ax, data["pauses"], scale)
    ax.set_xlim(left=0)
    ax.set(xlabel=f"wall time since the first trial started ({unit})", ylabel=data["metric"])
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_learning_curves(data: dict, colors: dict) -> Any:
    from matplotlib.lines import Line2D

    fig, ax = _figure(11, 4.6)
    markers = {"stopped early": ("X", 70), RUNNING: (">", 40), "failed": ("v", 50), "diverged": ("v", 50)}
    for rung in data["rungs"]:
        if rung < data["max_epochs"]:
            ax.axvline(rung, color="0.5", linestyle=":", linewidth=1)
    for c in data["trials"]:
        if not c["epochs"]:
            continue
        color = colors.get(c["family"], "0.4")
        ax.plot(c["epochs"], c["values"], color=color, alpha=0.75, linewidth=1.3, marker="." if len(c["epochs"]) < 30 else None)
        if c["status"] in markers:
            marker, size = markers[c["status"]]
            ax.scatter(c["epochs"][-1:], c["values"][-1:], marker=marker, s=size, color=color, edgecolor="black", linewidth=0.6, zorder=3)
    handles = [Line2D([], [], color=colors[f], linewidth=2, label=f) for f in colors if any(c["family"] == f and c["epochs"] for c in data["trials"])]
    handles += [Line2D([], [], linestyle="", marker=m, markeredgecolor="black", color="0.8", label=s) for s, (m, _) in markers.items()
                if any(c["status"] == s and c["epochs"] for c in data["trials"])]
    if data["rungs"]:
        handles.append(Line2D([], [], color="0.5", linestyle=":", label="ASHA rung"))
    ax.legend(handles=handles, fontsize=8, loc="upper right", ncols=2)
    ax.set(xlabel="epoch", ylabel=data["metric"])
    ax.set_xticks(range(1, data["max_epochs"] + 1) if data["max_epochs"] <= 30 else ax.get_xticks())
    ax.grid(alpha=0.3)
    return fig


def plot_families(data: dict, colors: dict) -> Any:
    fig, ax = _figure(11, 3.8)
    order = data["order"]
    if order:
        ax.boxplot([data["values"][f] for f in order], positions=range(len(order)), widths=0.5, showfliers=False,
                   medianprops={"color": "black"}, boxprops={"color": "0.4"}, whiskerprops={"color": "0.4"}, capprops={"color": "0.4"})
        rng = np.random.default_rng(0)  # fixed jitter: the same run gives the same picture
        for i, f in enumerate(order):
            vals, early = np.array(data["values"][f]), np.array([s == "stopped early" for s in data["status"][f]])
            x = i + rng.uniform(-0.15, 0.15, len(vals))
            for mask, marker in ((~early, "o"), (early, "X")):
                ax.scatter(x[mask], vals[mask], marker=marker, color=colors.get(f, "0.4"), edgecolor="black", linewidth=0.4, zorder=3, s=40)
        ax.scatter([], [], marker="X", color="0.8", edgecolor="black", label="stopped early")
        ax.legend(fontsize=8, loc="upper right")
        ax.set_xticks(range(len(order)), [f"{f}\n({len(data['values'][f])} trials)" for f in order])
    ax.set(ylabel=f"best {data['metric']} per trial")
    ax.grid(alpha=0.3, axis="y")
    return fig


def _positions(axis: dict, values: list) -> np.ndarray:
    """Each trial's height on one parallel axis, in [0, 1]; a trial without this hyperparameter sits at -0.12."""
    out = []
    for v in values:
        if v is None:
            out.append(-0.12)
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
        ticks = [(0.0, _fmt(axis["low"])), (1.0, _fmt(axis["high"]))]
        if axis["log"]:
            ticks.append((0.5, _fmt(math.sqrt(axis["low"] * axis["high"]))))
    return ticks + [(-0.12, "n/a")] * axis["missing"]


def plot_parallel(data: dict, colors: dict) -> Any:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    metric_axis = {"name": data["metric"], "kind": "numeric", "log": False, "missing": False,
                   "low": min((t["metric"] for t in data["trials"]), default=0.0), "high": max((t["metric"] for t in data["trials"]), default=1.0)}
    axes = data["axes"] + [metric_axis]
    fig, ax = _figure(13, 4.8)
    columns = [_positions(a, [t["values"][i] for t in data["trials"]]) for i, a in enumerate(data["axes"])]
    columns.append(_positions(metric_axis, [t["metric"] for t in data["trials"]]))
    ys = np.array(columns).T if data["trials"] else np.zeros((0, len(axes)))
    cmap = colormaps["viridis_r" if data["mode"] == "min" else "viridis"]
    norm = Normalize(metric_axis["low"], metric_axis["high"])
    # Worst first, so the best lines are drawn on top.
    order = sorted(range(len(data["trials"])), key=lambda i: data["trials"][i]["metric"], reverse=(data["mode"] == "min"))
    for rank, i in enumerate(order):
        top = rank == len(order) - 1
        color = cmap(norm(data["trials"][i]["metric"]))
        ax.plot(range(len(axes)), ys[i], color=color, linewidth=3 if top else 1.3, alpha=1 if top else 0.75)
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
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=data["metric"], pad=0.01)
    return fig


def plot_importance(data: dict, colors: dict) -> Any:
    items = list(data["importances"].items())[::-1]  # most important on top
    fig, ax = _figure(11, 0.9 + 0.38 * max(1, len(items)))
    ax.barh([k for k, _ in items], [v for _, v in items], color="C0")
    for y, (_, v) in enumerate(items):
        ax.annotate(f"{v:.0%}", (v, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
    ax.set(xlabel=f"share of the variance of the best {data['metric']} (fANOVA)", xlim=(0, 1.08))
    ax.grid(alpha=0.3, axis="x")
    return fig


def plot_timeline(data: dict, colors: dict) -> Any:
    from matplotlib.patches import Patch

    fig, ax = _figure(11, 1.2 + 0.45 * max(1, data["slots"]))
    scale, unit = _time_unit(data["span_s"])
    for bar in data["bars"]:
        failed = bar["status"] in ("failed", "diverged")
        ax.broken_barh([(bar["start"] / scale, max(bar["end"] - bar["start"], 0.05) / scale)], (bar["slot"] - 0.38, 0.76),
                       facecolor=colors.get(bar["family"], "0.5"), edgecolor="red" if failed else "black", linewidth=1.5 if failed else 0.5,
                       alpha=0.55 if bar["status"] == "stopped early" else 0.9, hatch="//" if bar["status"] == RUNNING else None)
        if (bar["end"] - bar["start"]) / max(data["span_s"], 1e-9) > 0.06:
            ax.text((bar["start"] + bar["end"]) / 2 / scale, bar["slot"], bar["trial_id"], ha="center", va="center", fontsize=7)
    _pause_lines(ax, data["pauses"], scale)
    ax.set_xlim(left=0)
    ax.set_yticks(range(data["slots"]), [f"slot {i + 1}" for i in range(data["slots"])])
    ax.set_ylim(data["slots"] - 0.5, -0.5)
    ax.set(xlabel=f"wall time since the first trial started ({unit})")
    used = [f for f in colors if any(b["family"] == f for b in data["bars"])]
    handles = [Patch(facecolor=colors[f], edgecolor="black", linewidth=0.5, label=f) for f in used]
    statuses = {b["status"] for b in data["bars"]}
    handles += [Patch(facecolor="0.8", alpha=0.55, edgecolor="black", linewidth=0.5, label="stopped early")] * ("stopped early" in statuses)
    handles += [Patch(facecolor="white", hatch="//", edgecolor="black", linewidth=0.5, label="running")] * (RUNNING in statuses)
    handles += [Patch(facecolor="white", edgecolor="red", linewidth=1.5, label="failed")] * bool(statuses & {"failed", "diverged"})
    # Above the plot, so that it never hides a bar.
    ax.legend(handles=handles, fontsize=8, loc="lower right", bbox_to_anchor=(1, 1.01), ncols=len(handles), frameon=False)
    ax.grid(alpha=0.3, axis="x")
    return fig


# --------------------------------------------------------------------------------------------- page

PLOTS = {
    "best-so-far": plot_best_so_far,
    "learning-curves": plot_learning_curves,
    "families": plot_families,
    "parallel-coordinates": plot_parallel,
    "importance": plot_importance,
    "timeline": plot_timeline,
}

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


def _e(value: Any) -> str:
    return html.escape(_fmt(value))


def _notes(section: str, data: dict) -> list[str]:
    """Plain-language caveats under a figure: empty data, untried families, excluded hyperparameters, idle time."""
    notes = []
    if section == "best-so-far" and not data["t"]:
        notes.append("No result with a metric value yet.")
    if section in ("best-so-far", "timeline") and data["pauses"]:
        hidden = sum(p["hidden_s"] for p in data["pauses"]) / 60
        notes.append(f"The experiment was interrupted and resumed: {hidden:.0f} min with nothing running are cut out of the time axis (dashed line).")
    if section == "families" and data["untried"]:
        notes.append(f"Never tried in this run: {', '.join(data['untried'])}.")
    if section == "parallel-coordinates" and not data["axes"]:
        notes.append("No hyperparameter varied between the trials with results.")
    if section == "importance":
        if data["note"]:
            notes.append(f"Not computed: {data['note']}.")
        if data["conditional"]:
            notes.append(f"Left out (only some families have them): {', '.join(data['conditional'])}.")
        if data["importances"]:
            notes.append(f"Over {data['n_trials']} trials, each counted with its best {data['metric']} "
                         "(early-stopped ones at the epoch they reached).")
    if section == "timeline" and data["utilization"] is not None:
        notes.append(f"{data['slots']} worker slot(s) used (max_concurrent: {data['max_concurrent'] or 'as many as fit'}); "
                     f"busy {data['utilization']:.0%} of the time from the first trial's start to the last one's end.")
    return notes


def _leaderboard_html(data: dict) -> str:
    parts = []
    best = data["best"]
    if best:
        shown = ", ".join(f"{k} <b>{v:.4g}</b>" for k, v in best["metrics"].items())
        parts.append(f'<p class="best">Best model: trial <b>{html.escape(best["trial_id"])}</b> ({html.escape(best["family"])}), '
                     f"epoch {best['epoch']}: {shown}.</p>")
    else:
        parts.append('<p class="note">No exported best model yet: the test metric appears once the run has finished.</p>')
    head = ["#", "trial", "family", "status", "epochs", f"best {data['metric']}", "hyperparameters that varied"]
    parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for row in data["rows"]:
        top = best is not None and row["trial_id"] == best["trial_id"]
        cells = [row["rank"], row["trial_id"], row["family"], row["status"], row["epochs"], row["best"]]
        tds = "".join(f'<td class="num">{_e(c)}</td>' if isinstance(c, (int, float)) else f"<td>{_e(c)}</td>" for c in cells)
        # One wrapping cell rather than a column each: a conditional space has many, mostly empty per family.
        shown = " ".join(f"{k.removeprefix('model/')}={_fmt(v)}" for k, v in row["hparams"].items() if k != "family" and v is not None)
        tds += f'<td class="hp">{html.escape(shown)}</td>'
        parts.append(f'<tr{" class=top" if top else ""}>{tds}</tr>')
    parts.append("</table>")
    return "\n".join(parts)


def _header(summary: dict) -> str:
    s = summary
    sched = s["scheduler"]
    sched_text = f"{sched['kind']}, max {sched['max_epochs']} epochs" + (
        f", grace {sched['grace_period']}, x{sched['reduction_factor']:g}" if sched["kind"] == "asha" else "")
    cards = [(s["trials"], f"of {s['planned']} planned trials")] + [(n, k) for k, n in sorted(s["status_counts"].items())]
    nav = "".join(f'<a href="#{sid}">{html.escape(title)}</a>' for sid, (title, _) in SECTIONS.items())
    return (
        f"<h1>{html.escape(s['name'])}</h1>"
        f'<p class="meta">{html.escape(s["task"])} task, optimizing {html.escape(s["metric"])} ({s["mode"]}) with '
        f"{html.escape(s['searcher'])} + {html.escape(sched_text)} &middot; {html.escape(s['state'])} &middot; "
        f"report generated {html.escape(s['generated'])}<br>{html.escape(s['run_dir'])}</p>"
        f'<div class="cards">' + "".join(f"<div class=card><b>{n}</b><span>{html.escape(k)}</span></div>" for n, k in cards) + "</div>"
        f"<nav>{nav}</nav>"
    )


def render_html(model: dict[str, Any]) -> str:
    """The report as one HTML string: styles inline, every figure an embedded PNG, no external reference."""
    families = model["summary"]["families"]  # the space's order, so a family keeps its colour across figures
    colors = _colors(families + sorted({c["family"] for c in model["learning-curves"]["trials"]} - set(families)))
    body = [_header(model["summary"])]
    for sid, (title, how) in SECTIONS.items():
        data = model[sid]
        body.append(f'<section id="{sid}"><h2>{html.escape(title)}</h2><p class="how">{html.escape(how)}</p>')
        if sid == "leaderboard":
            body.append(_leaderboard_html(data))
        elif sid != "importance" or data["importances"]:
            body.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{_png(PLOTS[sid](data, colors))}">')
        body.extend(f'<p class="note">{html.escape(n)}</p>' for n in _notes(sid, data))
        body.append("</section>")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(model["summary"]["name"])}: search report</title>'
            f"<style>{CSS}</style></head>\n<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n")


def write_report(run_dir: Path, out: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Builds and writes the report (default `<run_dir>/report.html`), replacing any older one in one step."""
    model = build_report(run_dir)
    out = Path(out) if out else Path(run_dir) / REPORT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp"
    tmp.write_text(render_html(model), encoding="utf-8")
    os.replace(tmp, out)
    return out, model
