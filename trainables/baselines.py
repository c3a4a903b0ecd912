"""The yardsticks every result is shown beside: each task's baselines, fitted on the training split and scored on
validation and test by the task's own objective, so their metrics are the models' metrics in the same units.

A baseline is one record in BASELINES: which data it applies to, and how it is fitted (training split -> a
predictor that maps a split's inputs to outputs as a model gives them: logits, or standardized values). The
registry feeds the run's `baselines.json`, the summary, `best`, the report and the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from trainables.tasks.base import TaskData, Windows

Predictor = Callable[[np.ndarray], np.ndarray]  # a split's inputs (N, ...) -> outputs (N, O) or (N, T, O)
BATCH = 1024  # samples scored at once: a bigram's (B, T, V) logits stay small on a large corpus
COUNT_ROWS = 1 << 16  # training rows counted at once by the frequency baselines


def _classes(data: TaskData) -> int:
    return data.spec.out_features


def _prior_logits(data: TaskData) -> np.ndarray:
    """Log class frequencies of the training targets, add-one smoothed (a class unseen in training keeps a
    finite log loss)."""
    y = data.splits["train"].y
    counts = np.zeros(_classes(data), dtype=np.float64)
    for start in range(0, len(y), COUNT_ROWS):  # in chunks: a large corpus's targets widened whole would be 8 bytes each
        counts += np.bincount(y[start : start + COUNT_ROWS].reshape(-1).astype(np.int64), minlength=len(counts))
    return np.log((counts + 1.0) / (counts.sum() + len(counts)))


def majority(data: TaskData) -> Predictor:
    """Classification: every sample (or step) gets the training class frequencies; its accuracy is the majority
    class's share, its log loss the cross entropy of the class prior (for characters: the unigram model)."""
    logits = _prior_logits(data).astype(np.float32)
    if data.spec.per_step:
        return lambda x: np.broadcast_to(logits, (len(x), x.shape[1], len(logits)))
    return lambda x: np.broadcast_to(logits, (len(x), len(logits)))


def bigram(data: TaskData) -> Predictor:
    """Next-token prediction from the current token alone: add-one smoothed counts of (token, next token) pairs
    in the training split."""
    classes = _classes(data)
    train = data.splits["train"]
    counts = pair_counts(train, classes) + 1.0  # (current, next), add-one
    table = np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)
    return lambda x: table[x.astype(np.int64)]  # (N, T, V)


def mean(data: TaskData) -> Predictor:
    """Regression: the training targets' mean for every sample."""
    center = data.splits["train"].y.reshape(-1, data.splits["train"].y.shape[-1]).mean(axis=0).astype(np.float32)
    return lambda x: np.broadcast_to(center, (len(x), len(center)))


def persistence(data: TaskData) -> Predictor:
    """Forecasting: each target's value at every step of the horizon is its last value in the window ("tomorrow,
    and every day after, equals today")."""
    p = data.preprocessing
    index = [p["columns"].index(t) for t in p["targets"]]
    horizon = p.get("horizon", 1)
    return lambda x: np.tile(x[:, -1, index], (1, horizon))  # (N, H * O), step major; inputs and targets share scaling


def seasonal_naive(data: TaskData) -> Predictor:
    """Forecasting with a `season`: each step's value is the value one season (or the fewest whole seasons that
    reach back into the window) before it."""
    p = data.preprocessing
    index, season, window = [p["columns"].index(t) for t in p["targets"]], p["season"], p["window"]
    # The window position of each step h's seasonal value: window + h - k * season, k the fewest seasons inside it.
    back = [window + h - math.ceil((h + 1) / season) * season for h in range(p.get("horizon", 1))]
    return lambda x: np.concatenate([x[:, b, index] for b in back], axis=1)  # (N, H * O), step major


def linear(data: TaskData) -> Predictor:
    """A linear model of the feature vector: least squares (ridge, closed form) for regression, multinomial
    logistic regression (full-batch L-BFGS, weakly L2-regularized) for classification."""
    import torch

    train = data.splits["train"]
    x = np.concatenate([train.x.astype(np.float64), np.ones((len(train.x), 1))], axis=1)  # (N, F + 1), bias last
    if data.objective["name"] != "accuracy":
        ridge = 1e-3 * np.eye(x.shape[1])
        ridge[-1, -1] = 0.0  # the bias is not shrunk
        w = np.linalg.solve(x.T @ x + ridge, x.T @ train.y.astype(np.float64)).astype(np.float32)  # (F + 1, O)
        return lambda inputs: np.concatenate([inputs, np.ones((len(inputs), 1), np.float32)], axis=1) @ w
    torch.manual_seed(0)
    xt, yt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(train.y.reshape(-1), dtype=torch.int64)
    w = torch.zeros(x.shape[1], _classes(data), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w, yt) + 1e-4 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    weights = w.detach().numpy().astype(np.float32)
    return lambda inputs: np.concatenate([inputs, np.ones((len(inputs), 1), np.float32)], axis=1) @ weights


@dataclass(frozen=True)
class Baseline:
    """A baseline: the data it applies to, and its fit (training split -> predictor)."""

    name: str
    applies: Callable[[TaskData], bool]
    fit: Callable[[TaskData], Predictor]
    help: str
    # Its prediction for a step depends on the current token alone (or on nothing): on token windows it is scored
    # from the counts of (token, next token) pairs, a V x V table, instead of a V-wide row per character.
    per_token: bool = False


def _objective(name: str) -> Callable[[TaskData], bool]:
    return lambda data: data.objective["name"] == name


BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("persistence", lambda d: d.kind == "forecast", persistence, "each target's last value in the window"),
    Baseline("seasonal naive", lambda d: d.kind == "forecast" and bool(d.preprocessing.get("season"))
             and d.preprocessing["season"] <= d.preprocessing["window"], seasonal_naive,
             "each step's value one season before (forecast, with task.season)"),
    Baseline("mean", _objective("rmse"), mean, "the training targets' mean"),
    Baseline("majority", _objective("accuracy"), majority, "the training class frequencies (accuracy: the majority class's)"),
    Baseline("linear", lambda d: d.spec.input_kind == "vector" and d.objective["name"] in ("rmse", "accuracy"), linear,
             "ridge regression, or multinomial logistic regression, on the features"),
    Baseline("unigram", _objective("bpc"), majority, "each character's training frequency", per_token=True),
    Baseline("bigram", lambda d: d.objective["name"] == "bpc" and d.spec.input_kind == "tokens", bigram,
             "the next character's training frequency after the current one", per_token=True),
)}


def pair_counts(part: Windows, classes: int) -> np.ndarray:
    """(classes, classes) float64 counts of (token, next token) over a split's windows, counted in chunks."""
    counts = np.zeros(classes * classes, dtype=np.float64)
    for start in range(0, len(part), COUNT_ROWS):
        pair = part.x[start : start + COUNT_ROWS].reshape(-1).astype(np.int64) * classes
        pair += part.y[start : start + COUNT_ROWS].reshape(-1)
        counts += np.bincount(pair, minlength=len(counts))
    return counts.reshape(classes, classes)


def _per_token_sums(part: Windows, predictor: Predictor, classes: int):
    """A per-token predictor's cross-entropy sums (loss sum, count) on token windows, from the split's pair counts:
    the predictor's row for each current token, weighted by how often each next token follows it."""
    import torch

    rows = torch.as_tensor(np.ascontiguousarray(predictor(np.arange(classes)[None, :])[0]), dtype=torch.float64)
    counts = torch.as_tensor(pair_counts(part, classes))
    loss_sum = -(counts * torch.log_softmax(rows, dim=-1)).sum()
    return torch.stack([loss_sum, counts.sum()])


def score(data: TaskData, predictor: Predictor, per_token: bool = False) -> dict[str, float]:
    """The predictor's loss and metrics on validation and test (`val_loss`, `val_rmse`, `test_rmse`, ...), computed by
    the task's objective exactly as a model's are (for a `per_token` predictor on token windows, the same cross
    entropy from pair counts)."""
    import torch

    from trainables.objectives import Objective

    objective = Objective(data.objective)
    found: dict[str, float] = {}
    for split in ("val", "test"):
        part = data.splits[split]
        if per_token and isinstance(part, Windows) and data.objective["name"] == "bpc":
            for name, value in objective.results(_per_token_sums(part, predictor, _classes(data))).items():
                found[f"{split}_{name}"] = float(value)
            continue
        sums = None
        for start in range(0, len(part.x), BATCH):
            out = torch.as_tensor(np.ascontiguousarray(predictor(part.x[start:start + BATCH])), dtype=torch.float32)
            y = part.y[start:start + BATCH]
            # Token ids come in their compact dtype (`Windows`); the loss takes int64 classes.
            batch = objective.sums(out, torch.as_tensor(y.astype(np.int64) if y.dtype.kind == "u" else y))
            sums = batch if sums is None else sums + batch
        for name, value in objective.results(sums).items():
            found[f"{split}_{name}"] = float(value)
    return found


def compute_baselines(data: TaskData) -> dict[str, dict[str, float]]:
    """Every baseline that applies to the data -> its validation and test metrics (finite ones only)."""
    found = {}
    for record in BASELINES.values():
        if record.applies(data):
            metrics = score(data, record.fit(data), record.per_token)
            found[record.name] = {k: v for k, v in metrics.items() if math.isfinite(v)}
    return found
