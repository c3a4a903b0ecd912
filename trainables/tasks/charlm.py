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
    Task,
    TaskBase,
    TaskData,
    Windows,
    split_sizes,
)
from trainables.tasks.corpus import Corpus, from_text, read_file

METRICS = modes(BPC, PERPLEXITY)
# A validation split above this many characters is sampled to this size during a search (every epoch of every
# trial evaluates it); the exported best model is evaluated on all of it.
SAMPLE_CHARS = 2_000_000


class CharLMTask(TaskBase):
    """Options of `task: {kind: charlm}`."""

    kind: Literal["charlm"]
    seq_len: int = Field(64, ge=2, le=4096)
    max_chars: Optional[int] = Field(None, ge=100, description="use only the first max_chars characters of the corpus")
    sample_chars: int = Field(SAMPLE_CHARS, ge=10_000, description="a larger validation split is validated on a seeded "
                              "sample of this many characters each epoch (a --budget may lower it to fit)")


def builtin_corpus() -> str:
    """CPython's own documentation topics, in a stable order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def read_corpus(data: str | None, max_chars: Optional[int] = None) -> tuple[Corpus, str]:
    """(ids and vocabulary, where they came from) of the user's UTF-8 file, or of the built-in corpus when `data`
    is None; a large file's ids come memory-mapped from the cache (`trainables.tasks.corpus`)."""
    if data is None:
        text = builtin_corpus()
        return from_text(text[:max_chars] if max_chars is not None else text), "pydoc_data.topics (CPython documentation)"
    path = Path(data)
    if not path.is_file():
        raise DataError(f"task.data: file not found: '{path}'")
    try:
        return read_file(path, max_chars), str(path)
    except OSError as exc:
        raise DataError(f"task.data: cannot read '{path}': {exc}") from exc


def validation_sample(n_windows: int, seq_len: int, seed: int = 0, chars: int = SAMPLE_CHARS) -> Optional[np.ndarray]:
    """The windows a search validates on: all of them (None) up to `chars` characters, else a fixed, seeded subset of
    that size, sorted (the same for every trial and epoch, so their values compare)."""
    k = max(1, chars // seq_len)
    if n_windows <= k:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_windows, size=k, replace=False))


def _samples(n_val: int, n_test: int, seq_len: int, chars: int) -> dict[str, Optional[np.ndarray]]:
    """The seeded samples of validation and test (None for a split within `chars`)."""
    return {"val": validation_sample(n_val, seq_len, 0, chars), "test": validation_sample(n_test, seq_len, 1, chars)}


def with_sample_chars(data: TaskData, chars: int) -> TaskData:
    """Loaded charlm data validated on samples of `chars` characters instead (the budget's choice), without reading
    the corpus again: the same seeded draw as loading with `task.sample_chars: chars` gives."""
    from dataclasses import replace

    val, test = data.splits["val"], data.splits["test"]
    samples = _samples(len(val), len(test), val.seq_len, chars)
    return replace(data, splits={**data.splits, "val": replace(val, sample=samples["val"]),
                                 "test": replace(test, sample=samples["test"])})


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
    corpus, source = read_corpus(options.data, options.max_chars)
    ids, vocab, chars = corpus.ids, corpus.vocab, len(corpus.ids)
    seq_len = options.seq_len
    # A corpus must give every split a few whole windows; smaller ones cannot be validated meaningfully.
    need = 4 * (seq_len + 1)
    n_windows = (chars - 1) // seq_len
    if chars < need or len(vocab) < 2:
        fits = _longest_window(chars, options) if len(vocab) >= 2 else None
        raise DataError(
            f"task.data: corpus '{source}' is too small: {chars} characters, {len(vocab)} distinct; "
            f"need at least {need} characters (4 windows of seq_len={seq_len}) and 2 distinct characters",
            Setting("task.seq_len", (str(fits),), purpose=" (the longest window it holds enough of)") if fits else None,
        )
    n_train, n_val, n_test = split_sizes(
        n_windows, options.val_fraction, options.test_fraction, source=f"task.data: corpus '{source}'", minimum=1
    )
    cut_val = n_train * seq_len
    cut_test = (n_train + n_val) * seq_len
    bounds = {"train": (0, cut_val + 1), "val": (cut_val, cut_test + 1), "test": (cut_test, chars)}
    splits = {
        # Validation and test each have their seeded sample: the search validates on the first, and an export bound
        # by a time budget evaluates on both (`export_best(sampled=True)`).
        name: Windows(ids[a:b], seq_len, sample=_samples(n_val, n_test, seq_len, options.sample_chars).get(name),
                      mapped=(corpus.mapped, a, b) if corpus.mapped else None)
        for name, (a, b) in bounds.items()
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
        prepared=f"{corpus.described(source)}; {n_windows:,} windows of {seq_len}",
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
