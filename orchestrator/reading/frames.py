"""The rows and columns of a run's DataFrames (`orchestrator.load_run(...).dataframe()`): one row per trial, or one
per epoch. Plain values, no pandas here: the API builds the frame from them."""

from __future__ import annotations

from typing import Any

from orchestrator.reading import results as R
from trainables import constants as C
from trainables.rows import epoch_began, usable_value
from trainables.trial import FAMILY, MODEL_PREFIX

# Result keys the DataFrame leaves out: bookkeeping, and the epoch (its own column) under Tune's name and ours.
NOT_COLUMNS = C.BOOKKEEPING | {"training_iteration", C.EPOCH}
LOSSES = {C.TRAIN_LOSS: "min", C.VAL_LOSS: "min"}  # reported every epoch besides the task's metrics


def table(trials: list[R.TrialRecord], metric: str, mode: str, max_epochs: int,
          per_epoch: bool) -> tuple[list[dict[str, Any]], list[str], tuple[str, ...]]:
    """(rows, columns in order, the columns holding epoch-second times) of the per-trial or the per-epoch table."""
    if per_epoch:
        rows = [row for t in trials for row in _epoch_rows(t)]
        times: tuple[str, ...] = ("timestamp",)
    else:
        metrics = _metric_modes(metric, mode, trials)
        rows = [_trial_row(t, metrics, max_epochs) for t in trials]
        times = ("started", "ended")
    # Every family's hyperparameters together after the family (model/... first), then the rest as met.
    hparams = sorted(dict.fromkeys(k for t in trials for k in t.hparams() if k != FAMILY), key=lambda k: not k.startswith(MODEL_PREFIX))
    leading = [] if per_epoch else ["trial_id", FAMILY, *hparams]
    return rows, list(dict.fromkeys([*leading, *(key for row in rows for key in row)])), times


def _metric_modes(metric: str, mode: str, trials: list[R.TrialRecord]) -> dict[str, str]:
    """Every metric the trials reported, with the direction that makes it better: the run's own first."""
    known = {**C.MODES, **LOSSES, metric: mode}
    seen = {key for t in trials for row in t.rows for key in row}
    return {m: known[m] for m in [metric, *known] if m in seen}


def _trial_row(t: R.TrialRecord, metrics: dict[str, str], max_epochs: int) -> dict[str, Any]:
    hparams = {k: v for k, v in t.hparams().items() if k != FAMILY}
    row: dict[str, Any] = {"trial_id": t.trial_id, FAMILY: t.family, **hparams, "status": t.status(max_epochs), "epochs": t.epochs}
    for metric, mode in metrics.items():
        values = t.values(metric)
        row[f"{metric}_last"] = values[-1] if values else None
        row[f"{metric}_best"] = t.best(metric, mode)
    first, last = (t.rows[0], t.rows[-1]) if t.rows else ({}, {})
    row["time_total_s"] = last.get("time_total_s")
    row["started"] = epoch_began(first)
    row["ended"] = last.get("timestamp")
    row["error"] = t.error
    row["num_params"], row["latency_ms"], row["latency_ms_256"] = t.num_params, t.latency_ms, t.latency_ms_256
    metric = next(iter(metrics), None)  # the run's own metric comes first
    row["checkpoint"] = _checkpoint(t, metric, metrics[metric]) if metric else None
    return row


def _checkpoint(t: R.TrialRecord, metric: str, mode: str) -> str | None:
    """The trial's kept checkpoint of its best epoch. Tune numbers a trial's checkpoints from 0, one per epoch here, so
    the best epoch's folder is tried first (one file check, which 2,000 trials want); else the kept ones are read."""
    scored = [(v, r["training_iteration"]) for r in t.rows if (v := usable_value(r, metric)) is not None and "training_iteration" in r]
    if scored:
        epoch = (min if mode == "min" else max)(scored)[1]
        folder = t.path / f"checkpoint_{epoch - 1:06d}"
        if (folder / C.STATE_FILE).is_file():
            return str(folder)
    found = t.best_checkpoint(metric, mode)
    return str(found[1]) if found else None


def _epoch_rows(t: R.TrialRecord) -> list[dict[str, Any]]:
    out = []
    for r in t.rows:
        values = {k: v for k, v in r.items() if k not in NOT_COLUMNS and not isinstance(v, (dict, list))}
        out.append({"trial_id": t.trial_id, FAMILY: t.family, "epoch": r.get("training_iteration"), **values})
    return out


