"""A table that costs what it weighs: its prepared arrays written once into the content-keyed data cache, mapped
read-only, equal to a fresh preparation, pickled as the files' names, and reused by a second load without parsing.

The tables are generated here (deterministically, as bytes: a 300k-row CSV in well under a second) and the cache's
threshold lowered to a few MB, so the test takes seconds; the rule is the same as at the real threshold.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from trainables.tasks import forecast, table_cache, tabular
from trainables.tasks.base import SPLITS
from trainables.tasks.corpus import CACHE_ENV
from trainables.tasks.forecast import ForecastTask
from trainables.tasks.tables import read_csv
from trainables.tasks.tabular import TabularTask

ROWS, FEATURES = 300_000, 20


def write_table(path: Path, rows: int, features: int, seed: int = 0) -> Path:
    """A CSV of `features` numeric columns (values d.ddd), a text column and a 3-class text target, built as bytes."""
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 10, size=(rows, features, 4), dtype=np.uint8) + ord("0")
    cells = np.empty((rows, features, 6), dtype=np.uint8)
    cells[:, :, 0], cells[:, :, 1], cells[:, :, 2:5], cells[:, :, 5] = digits[:, :, 0], ord("."), digits[:, :, 1:], ord(",")
    colour = np.array([list(b"red,"), list(b"tan,"), list(b"sky,")], dtype=np.uint8)[rng.integers(0, 3, rows)]
    # The class follows the first feature (and the colour a little), so the classes are learnable.
    label = np.array([list(b"low\n"), list(b"mid\n"), list(b"top\n")], dtype=np.uint8)[np.minimum(digits[:, 0, 0] - ord("0"), 8) // 3]
    header = ",".join([f"f{i}" for i in range(features)] + ["colour", "y"]) + "\n"
    body = np.concatenate([cells.reshape(rows, -1), colour, label], axis=1)
    with path.open("wb") as f:
        f.write(header.encode())
        body.tofile(f)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(table_cache, "MAP_BYTES", 4 << 20)
    return tmp_path / "cache"


def _same(a, b) -> None:
    assert (a.kind, a.spec, a.objective, a.metric, a.mode) == (b.kind, b.spec, b.objective, b.metric, b.mode)
    assert a.preprocessing == b.preprocessing, "the facts a trained model needs (scalers, categories, labels)"
    for name in SPLITS:
        assert a.splits[name].x.dtype == b.splits[name].x.dtype and a.splits[name].y.dtype == b.splits[name].y.dtype
        assert np.array_equal(a.splits[name].x, b.splits[name].x) and np.array_equal(a.splits[name].y, b.splits[name].y)


def test_a_large_table_is_prepared_once_into_a_mapped_cache(tmp_path, cache):
    csv = write_table(tmp_path / "big.csv", ROWS, FEATURES)
    options = TabularTask(kind="tabular", data=str(csv), target="y")
    began = time.monotonic()
    first = tabular.load(options)
    parsed_s = time.monotonic() - began
    train = first.splits["train"]
    assert isinstance(train.x, np.memmap) and isinstance(train.y, np.memmap) and not train.x.flags.writeable
    assert str(cache) in train.mapped[0] and (train.x.dtype, train.y.dtype) == (np.float32, np.int64)
    assert "read " in first.prepared and "300,000 samples of 23 features" in first.prepared and "memory-mapped" in first.prepared
    _same(first, tabular.prepare(options, csv))  # a fresh preparation, without the cache
    assert first.preprocessing["labels"] == ["low", "mid", "top"] and first.preprocessing["categories"]["colour"] == ["red", "sky", "tan"]
    written = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(written) == 3, "inputs, targets and the rest of the data"

    began = time.monotonic()
    again = tabular.load(options)
    assert "mapped from the cache" in again.prepared and time.monotonic() - began < parsed_s / 3, "no parsing"
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == written
    _same(again, first)

    # A pickle (how trials receive it through Ray's object store) carries the files' names, not the arrays.
    blob = pickle.dumps(again)
    assert len(blob) < 100_000
    back = pickle.loads(blob)
    assert isinstance(back.splits["val"].x, np.memmap)
    _same(back, again)
    # Any option that changes the arrays is another entry; a small table stays in memory and pickles its arrays.
    key = table_cache.table_key(options, csv)
    assert key in train.mapped[0] and table_cache.table_key(options.model_copy(update={"steps_per_epoch": 5}), csv) == key
    for change in ({"split_seed": 1}, {"missing": "drop"}, {"val_fraction": 0.2}, {"encoding": "ordinal"}):
        assert table_cache.table_key(options.model_copy(update=change), csv) != key, change
    small = tabular.load(TabularTask(kind="tabular", data=str(write_table(tmp_path / "small.csv", 1000, 3)), target="y"))
    assert small.splits["train"].mapped is None and "1,000 samples" in small.prepared
    assert np.array_equal(pickle.loads(pickle.dumps(small)).splits["test"].x, small.splits["test"].x)


def test_a_long_series_is_cached_and_mapped_alike(tmp_path, cache):
    steps = np.arange(60_000)
    csv = tmp_path / "series.csv"
    csv.write_text("t,a,b\n" + "\n".join(f"{t},{np.sin(t / 9):.4f},{t % 7}" for t in steps) + "\n")
    options = ForecastTask(kind="forecast", data=str(csv), time_column="t", targets=["a"], window=12, horizon=2)
    first = forecast.load(options)
    assert isinstance(first.splits["test"].x, np.memmap) and first.splits["test"].x.shape[1:] == (12, 2)
    _same(first, forecast.prepare(options, csv))
    again = forecast.load(options)
    assert "mapped from the cache" in again.prepared
    _same(pickle.loads(pickle.dumps(again)), first)


def test_a_table_without_comments_reads_as_one_with_them(tmp_path):
    plain = write_table(tmp_path / "plain.csv", 50, 2, seed=3)
    lines = plain.read_text().splitlines()
    commented = tmp_path / "commented.csv"
    commented.write_text("\n".join(["# made here", lines[0], "", *lines[1:]]) + "\n")
    fast, careful = read_csv(plain), read_csv(commented)
    assert fast.equals(careful.set_axis(fast.index)) and list(fast.index[:2]) == [2, 3] and careful.index[0] == 4


def test_lines_left_out_are_found_across_chunk_boundaries(tmp_path, monkeypatch):
    """The scan that lets pandas parse a file directly finds every blank or comment line, wherever chunks cut."""
    from trainables.tasks import tables

    monkeypatch.setattr(tables, "CHUNK_BYTES", 5)
    pool = ["1,2", " 1,2", "", "  ", "#c", " #c", "x#y", "\t", "3,4\r", "a,b"]
    rng = np.random.default_rng(0)
    for i in range(300):
        lines = [pool[j] for j in rng.integers(0, len(pool), rng.integers(1, 8))]
        text = "\n".join(lines) + ("\n" if i % 2 else "")
        path = tmp_path / f"{i}.csv"
        path.write_bytes(text.encode())
        skipped = any(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())
        assert tables._skips_lines(path, open) == skipped, repr(text)
