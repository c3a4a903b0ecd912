"""A table's prepared arrays kept once in the data cache and memory-mapped when large (`tabular`, `forecast`).

Parsing a large CSV costs seconds and several times its size in memory. When the arrays a load prepares (the
splits' inputs and targets) weigh over MAP_BYTES, they are written once into the cache of
`trainables.tasks.corpus`, keyed by the CSV's content (`fingerprint`) and every task option, beside what the rest
of the `TaskData` holds (the preprocessing facts a trained model needs: scalers, categories, class labels). A
second load maps them without reading the CSV, and their `Split`s pickle as the files' names, so every trial on
the node maps the same pages instead of receiving a copy (`trainables.tasks.base.Split`).

No torch here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from trainables.tasks.base import (
    SPLITS,
    DataError,
    ModelSpec,
    Split,
    TaskBase,
    TaskData,
)
from trainables.tasks.corpus import (
    CACHE_ENV,
    MAP_BYTES,
    cache_dir,
    fingerprint,
    human_size,
)

FORMAT = 1  # in every key: a change of what a cache entry holds makes new keys, never a wrong reuse
# Options that change nothing a load returns (the training loop reads them), so they do not make a new entry.
NOT_IN_KEY = {"data", "steps_per_epoch"}


def table_key(options: TaskBase, path: Path) -> str:
    """The cache key of `options` loaded from `path`: the file's content and every option that shapes the data."""
    chosen = options.model_dump(mode="json", exclude=NOT_IN_KEY)
    described = json.dumps({"format": FORMAT, "options": chosen, "file": fingerprint(path, None)}, sort_keys=True)
    return "table-" + hashlib.sha256(described.encode()).hexdigest()[:32]


def load_table(options: TaskBase, path: Path, build: Callable[[], TaskData]) -> TaskData:
    """The data of `options` on the CSV at `path`: mapped from the cache when it was prepared before, else `build()`
    (which parses the file), written to the cache and mapped when its arrays weigh over MAP_BYTES."""
    began = time.monotonic()
    if not path.is_file():
        return build()  # its own error names the option and the file
    key = table_key(options, path)
    files = _files(cache_dir(), key)
    if all(f.is_file() for f in files.values()):
        return _mapped(files, str(path), reused=True, began=began)
    data = build()
    arrays = [data.splits[name] for name in SPLITS]
    weight = sum(s.x.nbytes + s.y.nbytes for s in arrays)
    if weight <= MAP_BYTES:
        return dataclasses.replace(data, prepared=_described(data, path.name, path.stat().st_size, None, began))
    _write(files, data, source=str(path))
    del data, arrays  # the parsed arrays go; the maps hold the same values in the OS's page cache
    return _mapped(files, str(path), reused=False, began=began)


def _files(folder: Path, key: str) -> dict[str, Path]:
    return {"x": folder / f"{key}.x.npy", "y": folder / f"{key}.y.npy", "meta": folder / f"{key}.json"}


def _write(files: dict[str, Path], data: TaskData, *, source: str) -> None:
    """The splits' inputs and targets, each as one `.npy` (train, val, test rows in turn), then the rest of the data
    as JSON; each appears under its final name only when complete, the JSON last (its presence means all is there)."""
    splits = [data.splits[name] for name in SPLITS]
    try:
        files["meta"].parent.mkdir(parents=True, exist_ok=True)
        for part in ("x", "y"):
            blocks = [getattr(s, part) for s in splits]
            tmp = files[part].with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                shape = (sum(len(b) for b in blocks), *blocks[0].shape[1:])
                np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(blocks[0].dtype),
                                                         "fortran_order": False, "shape": shape})
                for block in blocks:
                    np.ascontiguousarray(block).tofile(f)
            os.replace(tmp, files[part])
        meta = {"format": FORMAT, "source": source, "kind": data.kind, "spec": dataclasses.asdict(data.spec),
                "objective": data.objective, "metric": data.metric, "mode": data.mode,
                "preprocessing": data.preprocessing, "rows": {name: len(data.splits[name]) for name in SPLITS},
                "csv_bytes": Path(source).stat().st_size}
        tmp = files["meta"].with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, files["meta"])
    except OSError as exc:
        raise DataError(f"task.data: cannot write the prepared table of '{source}' to {files['meta'].parent}: {exc}; "
                        f"set {CACHE_ENV} to a writable folder") from exc


def _mapped(files: dict[str, Path], source: str, *, reused: bool, began: float) -> TaskData:
    """The cached data with its splits as read-only maps of the cache files (each a row range of both)."""
    meta = json.loads(files["meta"].read_text(encoding="utf-8"))
    x, y = np.load(files["x"], mmap_mode="r"), np.load(files["y"], mmap_mode="r")
    splits, at = {}, 0
    for name in SPLITS:
        n = meta["rows"][name]
        splits[name] = Split(x[at : at + n], y[at : at + n], mapped=(str(files["x"]), str(files["y"]), at, at + n))
        at += n
    data = TaskData(kind=meta["kind"], spec=ModelSpec(**meta["spec"]), splits=splits, objective=meta["objective"],
                    metric=meta["metric"], mode=meta["mode"], preprocessing=meta["preprocessing"], source=source)
    read = 0 if reused else meta["csv_bytes"]
    return dataclasses.replace(data, prepared=_described(data, Path(source).name, read, str(files["x"].parent), began))


def _described(data: TaskData, name: str, read: int, mapped: str | None, began: float) -> str:
    """One line: what was read (or mapped), in how long, and what the arrays weigh and where they live."""
    splits = [data.splits[n] for n in SPLITS]
    rows, shape = sum(len(s) for s in splits), "x".join(map(str, splits[0].x.shape[1:]))
    weight = sum(s.x.nbytes + s.y.nbytes for s in splits)
    how = f"read {human_size(read)}" if read else "mapped from the cache"
    where = f", memory-mapped ({mapped})" if mapped else ""
    return (f"{name}: {how} in {time.monotonic() - began:.1f} s; {rows:,} samples of {shape} features, "
            f"{human_size(weight)} as {splits[0].x.dtype} / {splits[0].y.dtype}{where}")
