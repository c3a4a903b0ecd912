"""A text corpus as compact token ids: read and encoded in chunks, cached as a memory-mapped `.npy` when large.

A character corpus costs what it weighs: one id per character in the smallest dtype that holds the vocabulary
(uint8 up to 256 distinct characters, uint16 up to 65536, int32 above), never a second copy of the text. A file
is read twice in chunks of CHUNK_BYTES (the vocabulary first, then the ids), so the reader holds a chunk, not
the text. Ids above MAP_BYTES are written to a cache file keyed by the file's content (`fingerprint`) and
mapped read-only: a second run (or `validate`, then `run`) maps it without reading the text again, and every
trial on the node maps the same pages instead of receiving a copy (`trainables.tasks.base.Windows`).

No torch here (validating an experiment loads data with this module alone).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from trainables.tasks.base import DataError

CHUNK_BYTES = 16 << 20  # read (and decoded) at once: its utf-32 form is 4x this, the reader's working set
MAP_BYTES = 64 << 20  # ids above this go to a memory-mapped cache file instead of the process's memory
CACHE_ENV = "ORCHESTRATOR_DATA_CACHE"  # the cache folder, instead of the user's cache dir
FORMAT = 1  # in every cache key: a change of what a cache file holds makes new keys, never a wrong reuse
EDGE_BYTES = 1 << 20  # the fingerprint hashes the file's first and last MB, beside its size and mtime
PROGRESS_AFTER_S = 2.0  # a preparation shorter than this says nothing while it runs


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest dtype whose values index a vocabulary of `vocab_size` (models widen them per batch)."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


def cache_dir() -> Path:
    """Where prepared corpora are kept: $ORCHESTRATOR_DATA_CACHE, else the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "torch-orchestrator" / "data"


def fingerprint(path: Path, max_chars: Optional[int]) -> str:
    """A cache key of the file's content as far as it can be had cheaply: size, modification time and a hash of
    its first and last MB (a full hash would cost a read of the whole file each run), with `max_chars`."""
    st = path.stat()
    h = hashlib.sha256(f"{FORMAT}:{st.st_size}:{st.st_mtime_ns}:{max_chars}".encode())
    with path.open("rb") as f:
        h.update(f.read(EDGE_BYTES))
        if st.st_size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, st.st_size - EDGE_BYTES))
            h.update(f.read(EDGE_BYTES))
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class Corpus:
    """A corpus's ids and vocabulary, and what preparing them cost (for the progress line)."""

    ids: np.ndarray  # (N,) of id_dtype(len(vocab)); a read-only memmap when `mapped`
    vocab: list[str]
    mapped: Optional[str]  # the cache file the ids are mapped from
    reused: bool  # the cache file was there already: the text was not read
    text_bytes: int
    seconds: float

    def described(self, source: str) -> str:
        """One line: what was read, how long it took, what the ids weigh (and where they live)."""
        name = Path(source).name if self.mapped or self.text_bytes else source
        how = "mapped from the cache" if self.reused else f"read {human_size(self.text_bytes)}"
        where = f", memory-mapped ({self.mapped})" if self.mapped else ""
        return (f"{name}: {how} in {self.seconds:.1f} s; {len(self.ids):,} characters, {len(self.vocab)} distinct, "
                f"{human_size(self.ids.nbytes)} as {self.ids.dtype}{where}")


def human_size(n: int) -> str:
    """A byte count as the progress lines write it: GB, MB, or bytes."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n:,} bytes"


class Progress:
    """Lines about a long preparation: nothing in its first PROGRESS_AFTER_S, then one line at most every 10 s."""

    def __init__(self, what: str, say: Callable[[str], None] | None):
        self.what, self.say, self.began, self.last = what, say, time.monotonic(), None

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.say is None or now - self.began < PROGRESS_AFTER_S or (self.last is not None and now - self.last < 10):
            return
        self.last = now
        self.say(f"preparing {self.what}: {stage} {done / max(total, 1):.0%} ({now - self.began:.0f} s)")


def stderr_progress(line: str) -> None:
    """The default sink of progress lines: stderr, flushed (the run's own output stays on stdout)."""
    print(line, file=sys.stderr, flush=True)


def _file_codes(path: Path, limit: Optional[int], progress: Progress, stage: str) -> Iterator[np.ndarray]:
    """The file's code points, a chunk at a time (uint8 for an ASCII chunk, uint32 otherwise), up to `limit`."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    size, offset, left = path.stat().st_size, 0, limit
    with path.open("rb") as f:
        while True:
            chunk = f.read(CHUNK_BYTES)
            last = len(chunk) < CHUNK_BYTES
            if chunk.isascii() and not decoder.getstate()[0]:
                codes = np.frombuffer(chunk, dtype=np.uint8)  # ASCII: the bytes are the code points
            else:
                try:
                    text = decoder.decode(chunk, final=last)
                except UnicodeDecodeError as exc:
                    raise DataError(f"task.data: cannot read '{path}' as UTF-8 text: {exc.reason} at byte "
                                    f"{offset + exc.start}") from None
                codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            offset += len(chunk)
            if left is not None:
                codes, left = codes[:left], left - min(left, len(codes))
            if len(codes):
                yield codes
            progress(stage, offset, size)
            if last or left == 0:
                return


def _text_codes(text: str) -> Iterator[np.ndarray]:
    for start in range(0, len(text), CHUNK_BYTES):
        yield np.frombuffer(text[start : start + CHUNK_BYTES].encode("utf-32-le"), dtype=np.uint32)


def _vocabulary(chunks: Iterator[np.ndarray]) -> tuple[np.ndarray, int]:
    """(sorted distinct code points, number of characters) of a stream of code chunks."""
    seen = np.zeros(256, dtype=bool)
    count = 0
    for codes in chunks:
        counts = np.bincount(codes, minlength=len(seen))
        if len(counts) > len(seen):
            seen = np.concatenate([seen, np.zeros(len(counts) - len(seen), dtype=bool)])
        seen |= counts > 0
        count += len(codes)
    return np.flatnonzero(seen), count


def _lookup(points: np.ndarray) -> np.ndarray:
    """Code point -> id, in the ids' dtype."""
    table = np.zeros(int(points[-1]) + 1, dtype=id_dtype(len(points)))
    table[points] = np.arange(len(points))
    return table


def from_text(text: str) -> Corpus:
    """The ids of a text already in memory (the built-in corpus), encoded a chunk at a time."""
    began = time.monotonic()
    points, count = _vocabulary(_text_codes(text))
    if count == 0:
        return Corpus(np.zeros(0, np.uint8), [], None, False, 0, 0.0)
    table = _lookup(points)
    ids = np.empty(count, dtype=table.dtype)
    at = 0
    for codes in _text_codes(text):
        ids[at : at + len(codes)] = table[codes]
        at += len(codes)
    return Corpus(ids, [chr(p) for p in points], None, False, 0, time.monotonic() - began)


def read_file(path: Path, max_chars: Optional[int] = None, say: Callable[[str], None] | None = stderr_progress) -> Corpus:
    """The ids and vocabulary of a UTF-8 file (its first `max_chars` characters): from the cache when it was
    prepared before, else read in two chunked passes; ids above MAP_BYTES are written to the cache and mapped."""
    began = time.monotonic()
    key = fingerprint(path, max_chars)
    folder = cache_dir()
    ids_file, meta_file = folder / f"{key}.npy", folder / f"{key}.json"
    if ids_file.is_file() and meta_file.is_file():
        vocab = json.loads(meta_file.read_text(encoding="utf-8"))["vocab"]
        ids = np.load(ids_file, mmap_mode="r")
        return Corpus(ids, vocab, str(ids_file), True, 0, time.monotonic() - began)
    progress = Progress(path.name, say)
    points, count = _vocabulary(_file_codes(path, max_chars, progress, "reading the vocabulary"))
    if count == 0:
        return Corpus(np.zeros(0, np.uint8), [], None, False, path.stat().st_size, time.monotonic() - began)
    table = _lookup(points)
    vocab = [chr(p) for p in points]
    codes = _file_codes(path, max_chars, progress, "encoding")
    if count * table.dtype.itemsize <= MAP_BYTES:
        ids = np.empty(count, dtype=table.dtype)
        at = 0
        for chunk in codes:
            ids[at : at + len(chunk)] = table[chunk]
            at += len(chunk)
        return Corpus(ids, vocab, None, False, path.stat().st_size, time.monotonic() - began)
    _write_cache(ids_file, meta_file, codes, table, count, vocab, source=str(path))
    ids = np.load(ids_file, mmap_mode="r")
    return Corpus(ids, vocab, str(ids_file), False, path.stat().st_size, time.monotonic() - began)


def _write_cache(ids_file: Path, meta_file: Path, codes: Iterator[np.ndarray], table: np.ndarray, count: int,
                 vocab: list[str], *, source: str) -> None:
    """Writes the ids as a `.npy` a chunk at a time (plain writes: the pages go to the OS's cache, not this
    process's memory), then its vocabulary; both appear under their final names only when complete."""
    try:
        ids_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ids_file.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(table.dtype),
                                                     "fortran_order": False, "shape": (count,)})
            written = 0
            for chunk in codes:
                table[chunk].tofile(f)
                written += len(chunk)
        if written != count:  # the file changed between the two passes
            tmp.unlink()
            raise DataError(f"task.data: '{source}' changed while it was read ({count} then {written} characters); "
                            "run again once it is complete")
        os.replace(tmp, ids_file)
        meta_tmp = meta_file.with_suffix(f".{os.getpid()}.tmp")
        meta_tmp.write_text(json.dumps({"source": source, "characters": count, "vocab": vocab}), encoding="utf-8")
        os.replace(meta_tmp, meta_file)
    except OSError as exc:
        raise DataError(f"task.data: cannot write the prepared corpus of '{source}' to {ids_file.parent}: {exc}; "
                        f"set {CACHE_ENV} to a writable folder") from exc
