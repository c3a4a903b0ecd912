"""`orchestrator run --data FILE`: the experiment a data file implies, with no experiment file to write.

The task is inferred from the file and the flags: a text file is a character language model (`charlm`), a CSV
with `--target COL` a table to classify or regress (`tabular`), a CSV with `--forecast COL[,COL]` a series
to forecast (`forecast`), `FILE.py:function` a loader of the user's (`custom`). The task's bundled search
space and the defaults fill the rest; `--print-config` shows the result as YAML, to edit and run as a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

LOADER_REF = re.compile(r"^(?P<file>.+\.py):(?P<function>[A-Za-z_]\w*)$")
TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz")
# A first column with one of these names, or whose values parse as dates, is a series' time index.
TIME_NAMES = {"date", "time", "datetime", "timestamp", "year", "month", "day", "ds"}


def load_for_command(experiment: str | None, overrides: list[str], *, data: str | None, target: str | None, forecast: str | None,
                     budget: str | None, name: str | None, storage: str | None, say, horizon: int | None = None) -> Any:
    """The Experiment of a `run`/`validate` command: its file (the quickstart when none), or the one `--data`
    implies, whose inference is printed to `say` in one line before anything runs."""
    from orchestrator.experiment.load import (
        DATA_LABEL,
        experiment_from_mapping,
        load_experiment,
    )

    overrides = list(overrides) + ([f"budget={budget}"] if budget else [])
    if horizon is not None and (data is None or not forecast):
        raise UserError("--horizon goes with --data FILE --forecast COL (an experiment file sets task.horizon)")
    if horizon is not None and horizon < 1:
        raise UserError(f"--horizon {horizon}: forecasts at least 1 step ahead")
    if data is None:
        if target or forecast:
            raise UserError(f"{'--target' if target else '--forecast'} goes with --data FILE")
        return load_experiment(experiment, overrides, name=name, storage=storage)
    if experiment:
        raise UserError(f"--data {data}: give an experiment file or --data, not both (a file names its data as task.data)")
    raw, account = experiment_for_data(data, target=target, forecast=forecast, horizon=horizon)
    print(f"data: {account}", file=say, flush=True)
    return experiment_from_mapping(raw, Path.cwd() / "experiment.yaml", overrides, name=name, storage=storage, label=f"{DATA_LABEL}{data}")


def experiment_for_data(data: str, *, target: str | None = None, forecast: str | None = None,
                        horizon: int | None = None) -> tuple[dict[str, Any], str]:
    """(the experiment mapping, a one-line account of what was inferred) for `--data`."""
    if target and forecast:
        raise UserError("--target and --forecast: give one (--target COL classifies or regresses a column; "
                        "--forecast COL[,COL] forecasts series)")
    loader = LOADER_REF.match(data)
    if loader:
        return _custom(data, loader, target, forecast)
    path = Path(data).expanduser()
    if not path.is_file():
        raise UserError(f"--data {data}: file not found")
    name = _run_name(path)
    if not _is_table(path):
        if target or forecast:
            raise UserError(f"--data {data}: {'--target' if target else '--forecast'} needs a CSV table, but this is a text "
                            "file (it would train a character language model: leave the flag out)")
        return _named(name, {"kind": "charlm", "data": str(path.resolve())}), f"{data}: text -> task charlm (next-character language model)"
    columns = _columns(path)
    if target:
        return _tabular(name, path, columns, target)
    if forecast:
        return _forecast(name, path, columns, forecast, horizon)
    raise UserError(f"--data {data}: a CSV needs --target COLUMN (classify or regress that column) or --forecast "
                    f"COLUMN[,COLUMN] (forecast those series); columns: {', '.join(columns)}")


def _named(name: str, task: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "task": task}


def _run_name(path: Path) -> str:
    """The run's name from the file's: `sales-2024.csv` -> `sales-2024` (only the characters a run name allows)."""
    stem = path.name.split(".")[0]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", stem).strip("-._")
    return cleaned or "data"


def _is_table(path: Path) -> bool:
    return path.name.lower().endswith(TABLE_SUFFIXES)


def _columns(path: Path) -> list[str]:
    import pandas as pd

    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, comment="#").columns]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"--data {path}: cannot read as CSV: {exc}") from None


def _tabular(name: str, path: Path, columns: list[str], target: str) -> tuple[dict[str, Any], str]:
    if target not in columns:
        raise UserError(f"--target {target}: column not in {path}; columns: {', '.join(columns)}")
    task = {"kind": "tabular", "data": str(path.resolve()), "target": target}
    return _named(name, task), f"{path}: table, --target {target} -> task tabular (classification or regression, decided from the column)"


def _forecast(name: str, path: Path, columns: list[str], forecast: str, horizon: int | None = None) -> tuple[dict[str, Any], str]:
    targets = [c.strip() for c in forecast.split(",") if c.strip()]
    missing = [t for t in targets if t not in columns]
    if not targets or missing:
        raise UserError(f"--forecast {forecast}: column {missing[0] if missing else '(none)'!r} not in {path}; columns: {', '.join(columns)}")
    time_column = _time_column(path, columns, targets)
    numeric = _numeric_columns(path, [c for c in columns if c != time_column])
    task: dict[str, Any] = {"kind": "forecast", "data": str(path.resolve()), "targets": targets,
                            "columns": [c for c in numeric if c not in targets] + targets}
    if time_column:
        task["time_column"] = time_column
    if horizon:
        task["horizon"] = horizon
    index = f"; time column {time_column}" if time_column else ""
    ahead = f", the next {horizon} steps" if horizon and horizon > 1 else ""
    return _named(name, task), f"{path}: series, --forecast {','.join(targets)} -> task forecast{ahead}{index}"


def _time_column(path: Path, columns: list[str], targets: list[str]) -> str | None:
    """The first column, when it is not forecast and is named like a time index or holds dates."""
    import pandas as pd

    first = columns[0]
    if first in targets:
        return None
    if first.strip().lower() in TIME_NAMES:
        return first
    values = pd.read_csv(path, usecols=[first], nrows=50, comment="#")[first].dropna().astype(str)
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    return first if len(values) and parsed.notna().mean() > 0.9 and not values.str.fullmatch(r"-?\d+(\.\d+)?").all() else None


def _numeric_columns(path: Path, columns: list[str]) -> list[str]:
    """The columns that hold numbers (a series' other columns may be text, which a forecast cannot use)."""
    import pandas as pd

    sample = pd.read_csv(path, usecols=columns, nrows=200, comment="#")
    return [c for c in columns if pd.to_numeric(sample[c], errors="coerce").notna().mean() > 0.9]


def _custom(data: str, ref: re.Match, target: str | None, forecast: str | None) -> tuple[dict[str, Any], str]:
    from trainables.tasks import TASKS

    if target or forecast:
        raise UserError(f"--data {data}: a loader returns its own inputs and labels; leave out --target/--forecast")
    if "custom" not in TASKS:
        raise UserError(f"--data {data}: loaders (task kind custom) are not available in this version")
    if not Path(ref["file"]).expanduser().is_file():
        raise UserError(f"--data {data}: loader file {ref['file']} not found")
    task = {"kind": "custom", "loader": data}
    return _named(_run_name(Path(ref["file"])), task), f"{data}: a Python loader -> task custom (problem decided from its labels)"
