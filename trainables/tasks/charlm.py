"""Character-level language modelling: predict the next character; metric: validation bits per character.

Default corpus: the English documentation text that ships with CPython (`pydoc_data.topics`, ~465k
characters), so it works offline on any machine with Python.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field

from trainables.constants import BPC, PERPLEXITY, modes
from trainables.tasks.base import (
    DataError,
    ModelSpec,
    Setting,
    Split,
    Task,
    TaskBase,
    TaskData,
    split_sizes,
)

METRICS = modes(BPC, PERPLEXITY)


class CharLMTask(TaskBase):
    """Options of `task: {kind: charlm}`."""

    kind: Literal["charlm"]
    seq_len: int = Field(64, ge=2, le=4096)
    max_chars: Optional[int] = Field(None, ge=100, description="use only the first max_chars characters of the corpus")


def builtin_corpus() -> str:
    """CPython's own documentation topics, in a stable order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def read_corpus(data: str | None) -> tuple[str, str]:
    """(text, where it came from) of the user's UTF-8 file, or of the built-in corpus when `data` is None."""
    if data is None:
        return builtin_corpus(), "pydoc_data.topics (CPython documentation)"
    path = Path(data)
    if not path.is_file():
        raise DataError(f"task.data: file not found: '{path}'")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"task.data: cannot read '{path}' as UTF-8 text: {exc}") from exc


def windows(ids: np.ndarray, seq_len: int) -> Split:
    """Non-overlapping windows of `seq_len` inputs, each with its targets shifted by one character."""
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return Split(x=x.astype(np.int64), y=y.astype(np.int64))


def encode(text: str, vocab: list[str]) -> np.ndarray:
    """The text as (N,) int64 indices into `vocab`, by a table lookup over code points (no Python loop per char)."""
    lookup = np.zeros(max(map(ord, vocab)) + 1, dtype=np.int64)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
    return lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]


def _longest_window(chars: int, options: CharLMTask, shortest: int = 8) -> int | None:
    """The longest seq_len (at least `shortest`) for which a corpus of `chars` characters holds 4 windows and
    gives every split one; None when not even `shortest` does."""
    for seq_len in range(min(options.seq_len - 1, chars // 4 - 1), shortest - 1, -1):
        try:
            split_sizes((chars - 1) // seq_len, options.val_fraction, options.test_fraction, source="", minimum=1)
            return seq_len
        except DataError:
            continue
    return None


def load(options: CharLMTask) -> TaskData:
    """Reads, encodes and splits the corpus (contiguous train / val / test blocks, in that order)."""
    text, source = read_corpus(options.data)
    if options.max_chars is not None:
        text = text[: options.max_chars]
    vocab = sorted(set(text))
    seq_len = options.seq_len
    # A corpus must give every split a few whole windows; smaller ones cannot be validated meaningfully.
    need = 4 * (seq_len + 1)
    n_windows = (len(text) - 1) // seq_len
    if len(text) < need or len(vocab) < 2:
        fits = _longest_window(len(text), options) if len(vocab) >= 2 else None
        raise DataError(
            f"task.data: corpus '{source}' is too small: {len(text)} characters, {len(vocab)} distinct; "
            f"need at least {need} characters (4 windows of seq_len={seq_len}) and 2 distinct characters",
            Setting("task.seq_len", (str(fits),), purpose=" (the longest window it holds enough of)") if fits else None,
        )
    n_train, n_val, n_test = split_sizes(
        n_windows, options.val_fraction, options.test_fraction, source=f"task.data: corpus '{source}'", minimum=1
    )
    ids = encode(text, vocab)
    cut_val = n_train * seq_len
    cut_test = (n_train + n_val) * seq_len
    splits = {
        "train": windows(ids[: cut_val + 1], seq_len),
        "val": windows(ids[cut_val : cut_test + 1], seq_len),
        "test": windows(ids[cut_test:], seq_len),
    }
    return TaskData(
        kind="charlm",
        spec=ModelSpec("tokens", len(vocab), len(vocab), seq_len=seq_len, per_step=True),
        splits=splits,
        objective={"name": "bpc", "nats_to_bits": 1.0 / math.log(2.0)},
        metric=BPC,
        mode=METRICS[BPC],
        preprocessing={"vocab": vocab, "seq_len": seq_len},
        source=source,
    )


def usage(model_path) -> list[tuple[str, str]]:
    """A charlm model is used by sampling from it (`trainables.sample_text`), not through `predict`."""
    return [("Sample text", f"orchestrator sample {model_path} --prompt 'The '")]


TASK = Task(
    name="charlm",
    options=CharLMTask,
    load=load,
    input_kind="tokens",
    metrics=METRICS,
    default_space="charlm",
    description="next-character language model; metrics val_bpc (bits per character), val_perplexity",
    predict=None,
    usage=usage,
)
