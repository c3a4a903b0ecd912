"""Data that costs what it weighs: a 40 MB corpus (generated from this Python's standard library, not committed)
as compact ids, its windows views of them, its ids prepared once into a memory-mapped cache that a second
preparation, a pickle (Ray's object store) and the trials reuse, and a search on it that trains."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from benchmarks.big_corpus import write_corpus
from trainables.objectives import Objective
from trainables.tasks import TASKS
from trainables.tasks.base import ModelSpec, Split, TaskData, Windows
from trainables.tasks.charlm import SAMPLE_CHARS, CharLMTask
from trainables.tasks.corpus import CACHE_ENV, MAP_BYTES, id_dtype
from trainables.training import (
    DeviceData,
    TrialConfig,
    build_trial,
    run_epoch,
    split_metrics,
    train_epoch,
)

MB = 1_000_000
MLP = TrialConfig.from_tune({"arch": {"family": "mlp", "model": {"hidden_size": 32, "context": 4}}, "lr": 3e-3, "batch_size": 64})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 40 MB text of the standard library's sources: over 256 distinct characters, so uint16 ids (80 MB, above
    the cache's threshold)."""
    return write_corpus(tmp_path_factory.mktemp("corpus") / "big.txt", 40 * MB)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _load(path, **options):
    return TASKS["charlm"].load(CharLMTask(kind="charlm", data=str(path), **options))


def test_ids_are_compact_and_windows_are_views_of_them(corpus, cache):
    data = _load(corpus)
    train = data.splits["train"]
    assert isinstance(train, Windows) and train.ids.dtype == id_dtype(data.spec.in_features) == np.uint16
    assert train.ids.nbytes + data.splits["val"].ids.nbytes + data.splits["test"].ids.nbytes < 2.01 * 40 * MB
    for split in data.splits.values():
        x, y = split.x, split.y
        assert np.shares_memory(x, y) and np.shares_memory(x, split.ids), "inputs and targets are views of the ids"
        assert (x[:, 1:] == y[:, :-1]).all() and (y[:-1, -1] == x[1:, 0]).all(), "targets are the inputs shifted by one"
    # The splits are contiguous blocks: validation's first input is training's last target.
    assert data.splits["val"].x[0, 0] == train.y[-1, -1]


def test_a_large_corpus_is_prepared_once_into_a_mapped_cache(corpus, cache):
    first = _load(corpus)
    assert first.splits["train"].ids.nbytes > MAP_BYTES / 2
    path, *_ = first.splits["train"].mapped
    assert isinstance(first.splits["train"].ids, np.memmap) and str(cache) in path
    assert "read 40.0 MB" in first.prepared and "memory-mapped" in first.prepared and "uint16" in first.prepared
    written = (cache / path.rsplit("/", 1)[-1]).stat().st_mtime_ns
    again = _load(corpus)
    assert "mapped from the cache" in again.prepared, "the second preparation reads no text"
    assert again.splits["train"].mapped[0] == path and (cache / path.rsplit("/", 1)[-1]).stat().st_mtime_ns == written
    assert np.array_equal(again.splits["test"].ids, first.splits["test"].ids)
    # A pickle (how the trials receive it through Ray's object store) carries the file's name, not its ids.
    blob = pickle.dumps(again)
    assert len(blob) < 2 * MB
    back = pickle.loads(blob).splits["val"]
    assert isinstance(back.ids, np.memmap) and np.array_equal(back.ids, again.splits["val"].ids)
    assert np.array_equal(back.sample, again.splits["val"].sample)
    # Another max_chars is another corpus: its own key, prepared in memory (below the threshold).
    small = _load(corpus, max_chars=1_000_000)
    assert small.splits["train"].mapped is None and len(list(cache.glob("*.npy"))) == 1


def test_a_search_validates_on_a_fixed_sample_and_trains_on_compact_ids(corpus, cache):
    data = pickle.loads(pickle.dumps(_load(corpus)))  # as a trial receives it
    val = data.splits["val"]
    assert len(val.sample) == SAMPLE_CHARS // 64 < len(val) and (np.diff(val.sample) > 0).all()
    assert "validation on a seeded sample of 31,250 of" in data.summary()
    staged = DeviceData.stage(data, torch.device("cpu"))
    assert staged.splits["train"].ids.dtype == torch.int16, "uint16 ids staged as their bit pattern, not widened"
    assert np.shares_memory(staged.splits["train"].ids.numpy(), data.splits["train"].ids), "the trial maps, no copy"
    x, y = staged.splits["val"].batch(torch.tensor([0, len(val) - 1]))
    assert x.dtype == torch.int64 and int(x.max()) < data.spec.in_features
    assert torch.equal(x, torch.as_tensor(val.x[[0, -1]].astype(np.int64)))
    assert torch.equal(y, torch.as_tensor(val.y[[0, -1]].astype(np.int64)))
    state = build_trial(MLP, data.spec, torch.device("cpu"), seed=0, max_epochs=2)
    first = train_epoch(state, staged, Objective(data.objective), max_steps=20)
    assert first["train_loss"] < np.log(data.spec.in_features), "it learns from the mapped, compact ids"


def test_a_search_validates_on_its_fixed_sample_the_whole_split_otherwise():
    rng = np.random.default_rng(0)
    val = Windows(rng.integers(0, 10, 3 * 40 + 1).astype(np.uint8), 3, sample=np.array([1, 5, 6, 30]))
    data = TaskData("charlm", ModelSpec("tokens", 10, 10, seq_len=3, per_step=True), {"train": val, "val": val, "test": val},
                    {"name": "bpc"}, "val_bpc", "min")
    only = Split(val.x[val.sample].astype(np.int64), val.y[val.sample].astype(np.int64))
    alone = TaskData("charlm", data.spec, {"train": only, "val": only, "test": only}, data.objective, "val_bpc", "min")
    model, objective = build_trial(MLP, data.spec, torch.device("cpu"), seed=0, max_epochs=1).model, Objective(data.objective)
    staged = DeviceData.stage(data, torch.device("cpu"))
    sampled = split_metrics(model, staged, "val", objective, sampled=True)
    assert sampled == split_metrics(model, DeviceData.stage(alone, torch.device("cpu")), "val", objective)
    assert sampled != split_metrics(model, staged, "val", objective), "the whole split unless sampled (the exported best)"
    assert run_epoch(build_trial(MLP, data.spec, torch.device("cpu"), seed=0, max_epochs=1), staged, objective,
                     "val_bpc")["val_bpc"] == pytest.approx(sampled["val_bpc"], rel=0.2)


def test_widening_restores_uint16_ids_above_the_int16_range():
    ids = np.array([0, 40000, 65535, 1, 300, 65000, 7], dtype=np.uint16)
    staged = DeviceData.stage(_windows_data(ids), torch.device("cpu"))
    x, y = staged.splits["train"].rows(0, 2)
    assert x.tolist() == [[0, 40000, 65535], [1, 300, 65000]] and y.tolist() == [[40000, 65535, 1], [300, 65000, 7]]


def _windows_data(ids):
    w = Windows(ids, 3)
    return TaskData("charlm", ModelSpec("tokens", 65536, 65536, seq_len=3, per_step=True), {"train": w, "val": w, "test": w},
                    {"name": "bpc"}, "val_bpc", "min")


@pytest.mark.slow
def test_a_search_on_a_mapped_corpus_trains(corpus, cache, ray_session, tmp_path):
    from conftest import tiny_config

    import orchestrator

    # A small MLP: the export evaluates the best model on the whole 4M-character validation and test splits.
    config = tiny_config(tmp_path / "runs", num_samples=2, max_concurrent=2,
                         task={"kind": "charlm", "data": str(corpus), "steps_per_epoch": 5},
                         search_space={"families": {"mlp": {"hidden_size": 32, "context": 4}},
                                       "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}, "batch_size": 32}},
                         scheduler={"kind": "fifo", "max_epochs": 1}, warm_start="none")
    run = orchestrator.run(config)
    rows = run.dataframe()
    assert len(rows) == 2 and rows["val_bpc_best"].notna().all()
    assert next(cache.glob("*.npy")).stat().st_size > MAP_BYTES, "the trials mapped the cache the driver prepared"
    # The search's figure is the validation sample's; the exported best is evaluated on the whole split.
    best = run.best_model().metrics
    assert best["val_bpc"] == pytest.approx(rows["val_bpc_best"].min(), rel=0.05) and "test_bpc" in best


def test_a_budget_validates_on_a_smaller_sample_when_validation_would_eat_it(corpus, cache, tmp_path):
    """A 3-minute budget leaves an epoch's validation 3 s: validation costed at 12 s on 2M characters is cut to 500k
    characters (`task.sample_chars`, kept in the config for a resume), the same seeded draw as loading with it, and
    the validation and export costs scale with it. A budget with room keeps the sample."""
    from orchestrator.experiment.load import experiment_from_mapping
    from orchestrator.running.prepare import Prepared
    from orchestrator.search.budget import _smaller_sample
    from orchestrator.search.cost_probe import Costs

    exp = experiment_from_mapping({"task": {"kind": "charlm", "data": str(corpus)}}, tmp_path / "exp.yaml")
    p = Prepared(exp, _load(corpus), "val_bpc", "min")
    costs = Costs(epoch={"mlp": 20.0}, validate={"mlp": 12.0, "lstm": 6.0}, steps=100, export_s=24.0)
    smaller, config, scaled = _smaller_sample(p, costs, budget_s=180.0)
    assert config.task.sample_chars == 500_000 and smaller.exp.config.task.sample_chars == 500_000
    direct = _load(corpus, sample_chars=500_000)
    for split in ("val", "test"):
        assert len(smaller.data.splits[split].sample) == 500_000 // 64
        assert np.array_equal(direct.splits[split].sample, smaller.data.splits[split].sample)
    assert scaled.validate["mlp"] == pytest.approx(12.0 * (500_000 // 64) / (SAMPLE_CHARS // 64))
    assert scaled.export_s < costs.export_s and scaled.epoch == costs.epoch
    assert _smaller_sample(p, costs, budget_s=3600.0)[0] is p, "an hour's budget has room for the default sample"
