"""Reading real-world CSV files for the `forecast` and `tabular` tasks: comment lines, empty cells, text columns.

Every cell is checked; an error names the file, the column, the row (the line of the file, so the user can go
to it: comment and blank lines are counted) and the value. No torch here.
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path
from typing import Literal

import numpy as np

from trainables.tasks.base import DataError, Setting
from trainables.tasks.corpus import CHUNK_BYTES

# What to do with empty cells: `error` (the default) refuses them; `drop` leaves out their rows; `ffill` carries
# the last value above forward; `interpolate` (series only) draws a straight line between the values around them.
Missing = Literal["error", "drop", "ffill", "interpolate"]
TableMissing = Literal["error", "drop", "ffill"]


def read_csv(path: Path, *, option: str = "task.data"):
    """The CSV as a DataFrame whose index is each row's line number in the file; `#` comment lines and blank
    lines are skipped (a `#` inside a row is data, as in a colour `#ff0000`)."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{option}: file not found: '{path}'")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        kept = None  # (line number, line) of every line kept, when some are left out
        if not _skips_lines(path, opener):
            # Nothing to leave out: pandas parses the file itself, without the copies of its text below (a 170 MB
            # file: 0.6 GB at the peak instead of 1.5 GB), and every row's line number follows from its position.
            frame = pd.read_csv(path, encoding="utf-8-sig", compression="gzip" if opener is gzip.open else None)
        else:
            with opener(path, "rt", encoding="utf-8-sig", newline="") as f:  # -sig: a BOM is not part of the header
                lines = f.read().splitlines()
            kept = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and not line.lstrip().startswith("#")]
            frame = pd.read_csv(io.StringIO("\n".join(line for _, line in kept)))
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"{option}: cannot read '{path}' as CSV: {exc}") from exc
    if frame.empty:
        raise DataError(f"{option}: '{path}' has no data rows")
    # A quoted cell spanning lines makes rows and lines differ; then rows are counted from the header instead.
    numbers = [n for n, _ in kept[1:]] if kept and len(kept) - 1 == len(frame) else range(2, len(frame) + 2)
    frame.index = pd.Index(numbers, name="row")
    return frame


# A line `read_csv` leaves out: blank, or a comment (`#` after any indentation).
_SKIPPED = re.compile(rb"(?m)^[ \t\r]*(?:#|$)")
# The first bytes of such a line (`_SKIPPED`, slow on large text, runs only where a line starts with one of them).
_SKIP_STARTS = np.frombuffer(b"\n# \t\r", dtype=np.uint8)
# Line breaks that pandas and Python's splitlines see differently: a file holding one takes the careful path.
_OTHER_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_BOM = b"\xef\xbb\xbf"


def _skips_lines(path: Path, opener) -> bool:
    """Whether the file may hold a line `read_csv` leaves out (blank or comment), read a chunk at a time. Any text
    beyond ASCII (other than a BOM) counts as may: only an ASCII file's lines are the same to pandas and Python."""
    carry = b""
    with opener(path, "rb") as f:
        chunk = f.read(CHUNK_BYTES)
        chunk = chunk[len(_BOM) :] if chunk.startswith(_BOM) else chunk
        while chunk:
            block = carry + chunk
            # A lone CR breaks a line for both, but not for `_SKIPPED`: such files take the careful path too (a CR
            # that ends the block may be followed by the next chunk's LF: it stays in `carry` and is counted then).
            lone_cr = block.count(b"\r") - block.endswith(b"\r") != block.count(b"\r\n")
            if not chunk.isascii() or any(b in chunk for b in _OTHER_BREAKS) or lone_cr:
                return True
            cut = block.rfind(b"\n")
            if cut < 0 and len(block) > CHUNK_BYTES:  # no line break in a whole chunk: not a table this path reads
                return True
            if cut >= 0 and _has_skipped(block[:cut]):
                return True
            carry = block[cut + 1 :] if cut >= 0 else block
            chunk = f.read(CHUNK_BYTES)
    return bool(carry) and _has_skipped(carry)


def _has_skipped(lines: bytes) -> bool:
    """Whether whole lines (from a line's start to a line's end, without the last break) hold one `read_csv` skips."""
    data = np.frombuffer(lines, dtype=np.uint8)
    starts = data[1:][data[:-1] == ord("\n")]  # each line's first byte, but the first line's
    edges = lines[:1] in (b"", b"\n", b"#", b" ", b"\t", b"\r") or lines.endswith(b"\n")  # the first line, the last
    if edges or np.isin(starts, _SKIP_STARTS).any():
        return _SKIPPED.search(lines) is not None
    return False


def check_columns(frame, columns: list[str], path: Path, key: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{key}: column '{missing[0]}' is not in '{path}'; columns: {', '.join(map(str, frame.columns))}")


def is_text(column) -> bool:
    """A text column: no non-empty cell of it reads as a number (one stray word in numbers is an error instead)."""
    import pandas as pd

    present = column.dropna()
    return len(present) > 0 and bool(pd.to_numeric(present, errors="coerce").isna().all())


def numeric_frame(frame, columns: list[str], path: Path, key: str):
    """The named columns as float64, empty cells as NaN; a cell holding text is an error naming it."""
    import pandas as pd

    check_columns(frame, columns, path, key)
    out = {}
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = frame.index[np.flatnonzero(bad.to_numpy())[0]]
            raise DataError(
                f"{key}: column '{column}' of '{path}' must be numeric, but row {row} holds {frame[column].loc[row]!r}"
            )
        out[column] = values.astype(np.float64)
    return pd.DataFrame(out, index=frame.index)


def first_empty(frame, columns: list[str]) -> tuple[object, str] | None:
    """(row, column) of the first empty cell in file order, or None."""
    empty = frame[columns].isna().to_numpy()
    if not empty.any():
        return None
    i = int(np.flatnonzero(empty.any(axis=1))[0])
    return frame.index[i], columns[int(np.flatnonzero(empty[i])[0])]


def fill_missing(frame, columns: list[str], policy: str, path: Path, *, series: bool):
    """`frame` with the empty cells of `columns` handled by `policy` (see `Missing`); rows dropped keep their line numbers."""
    found = first_empty(frame, columns)
    if found is None:
        return frame
    row, column = found
    choices = "drop, ffill or interpolate" if series else "drop or ffill"
    if policy == "error":
        raise DataError(f"task.data: '{path}' has an empty cell in column '{column}', row {row}",
                        Setting("task.missing", ("drop", "ffill", "interpolate") if series else ("drop", "ffill"),
                                example="interpolate" if series else None, purpose=" to use such a file"))
    if policy == "interpolate" and not series:
        raise DataError(f"task.missing: 'interpolate' is for series (forecast); for table rows choose {choices}")
    if policy == "drop":
        kept = frame.loc[~frame[columns].isna().any(axis=1)]
        if kept.empty:
            raise DataError(f"task.missing: 'drop' leaves no rows of '{path}': every row has an empty cell")
        return kept
    frame = frame.copy()
    if policy == "ffill":
        frame[columns] = frame[columns].ffill()
        left = first_empty(frame, columns)
        if left is not None:
            raise DataError(
                f"task.missing: 'ffill' cannot fill column '{left[1]}', row {left[0]} of '{path}': no value above it"
            )
        return frame
    # Linear in the row order, and the first/last values held at the ends of the series.
    frame[columns] = frame[columns].interpolate(method="linear", limit_direction="both")
    return frame


Encoding = Literal["onehot", "ordinal"]


def feature_table(frame, features: list[str], path: Path, missing: str):
    """(table, text columns): the feature columns with numbers as float64 and text columns as they are, empty
    cells handled by `missing`. A column is text when none of its cells reads as a number."""
    text = [c for c in features if is_text(frame[c])]
    table = numeric_frame(frame, [c for c in features if c not in text], path, "task.data")
    for column in text:
        table[column] = frame[column].astype(object)
    table = table[features]
    return fill_missing(table, features, missing, path, series=False), text


def encode_features(table, text: list[str], encoding: str) -> tuple[np.ndarray, dict]:
    """(N, W) float64 features, each text column one-hot (W grows by its categories) or ordinal (one column of
    category indices), and the categories that encode raw rows the same way at predict time."""
    categories = {c: sorted({str(v) for v in table[c]}) for c in text}
    blocks = [encode_column(table[c].to_numpy(), c, categories.get(c), encoding) for c in table.columns]
    return np.concatenate(blocks, axis=1), {"categories": categories, "encoding": encoding}


def encode_column(values: np.ndarray, column: str, categories: list[str] | None, encoding: str) -> np.ndarray:
    """One raw column (N,) as (N, 1) numbers, or (N, K) one-hot / (N, 1) ordinal codes for a text column."""
    if categories is None:
        try:
            return np.asarray(values, dtype=np.float64).reshape(-1, 1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column '{column}' must be numeric: {exc}") from None
    index = {c: i for i, c in enumerate(categories)}
    unknown = [v for v in values if str(v) not in index]
    if unknown:
        raise ValueError(f"column '{column}': {unknown[0]!r} is not a category seen in training; known: {', '.join(categories)}")
    codes = np.array([index[str(v)] for v in values], dtype=np.int64)
    if encoding == "ordinal":
        return codes.reshape(-1, 1).astype(np.float64)
    return np.eye(len(categories), dtype=np.float64)[codes]


def encode_rows(rows, features: list[str], preprocessing: dict) -> np.ndarray:
    """Raw rows ((F,) or (N, F) in the file's column order, or a DataFrame with the feature columns) as the
    (N, W) float32 features the model was trained on, before standardization."""
    categories = preprocessing.get("categories") or {}
    if hasattr(rows, "columns"):  # a DataFrame: its columns by name, in the training order
        table = np.asarray(rows[features].to_numpy(dtype=object))
    else:
        table = np.asarray(rows, dtype=object if categories else np.float32)
        table = table[None] if table.ndim == 1 else table
    if not categories:
        return table.astype(np.float32)
    if table.ndim != 2 or table.shape[1] != len(features):
        raise ValueError(f"rows must have {len(features)} values each ({', '.join(features)}), but got shape {table.shape}")
    encoding = preprocessing.get("encoding", "onehot")
    blocks = [encode_column(table[:, i], c, categories.get(c), encoding) for i, c in enumerate(features)]
    return np.concatenate(blocks, axis=1).astype(np.float32)
