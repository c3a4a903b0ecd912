"""A weighted ensemble of a run's trained models: greedy ensemble selection, and the module that averages them.

The strongest answer of a search is often a few of its models combined. Ensemble selection (Caruana et al.,
2004, "Ensemble selection from libraries of models"): start from nothing, add with replacement the member
whose addition makes the ensemble's validation metric best, and keep the best ensemble met on the way, so
the result is never worse on validation than the best single model (an ensemble of that model alone is the
first one met). The weights are how often each member was picked.

The members are averaged in the task's own terms: class probabilities (and next-character distributions) for
a classification objective, whose output is then the log of the averaged probabilities (valid logits: every
loss, metric, `predict` and `sample_text` reads them as a single model's); values in standardized units for
regression. So an ensemble is an `nn.Module` like any other, evaluated and exported by the same code.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.objectives import Objective

ROUNDS_PER_MEMBER = 4  # selection rounds per candidate: weights in steps of 1 / (4K), enough to settle
EVAL_BATCH = 4096


class Ensemble(nn.Module):
    """Members' outputs combined with fixed weights: probabilities averaged (`probabilities`) or values averaged."""

    def __init__(self, members: list[nn.Module], weights: list[float], probabilities: bool):
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError(f"an ensemble needs one weight per member, but got {len(members)} members and {len(weights)} weights")
        self.members = nn.ModuleList(members)
        total = float(sum(weights))
        self.register_buffer("weights", torch.tensor([w / total for w in weights], dtype=torch.float32))
        self.probabilities = probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [member(x) for member in self.members]
        return combine(outputs, self.weights, self.probabilities)


def combine(outputs: list[torch.Tensor], weights: torch.Tensor, probabilities: bool) -> torch.Tensor:
    """The weighted average of members' outputs: of their softmax, returned as log-probabilities, or of the values."""
    if probabilities:
        mixed = sum(w * torch.softmax(o.float(), dim=-1) for w, o in zip(weights.tolist(), outputs))
        return torch.log(mixed.clamp_min(torch.finfo(torch.float32).tiny))
    return sum(w * o for w, o in zip(weights.tolist(), outputs))


@torch.no_grad()
def outputs_on(model: nn.Module, split) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, targets) of the model on every sample of a staged split (`trainables.training.DeviceData`), in
    batches: the selection reads each member's outputs once."""
    model.eval()
    outputs, targets = [], []
    for start in range(0, len(split), EVAL_BATCH):
        x, y = split.rows(start, start + EVAL_BATCH)
        outputs.append(model(x))
        targets.append(y)
    return torch.cat(outputs), torch.cat(targets)


def _score(mixed: torch.Tensor, y: torch.Tensor, objective: Objective, metric: str) -> float:
    """`metric`'s value (`val_rmse`, `val_bpc`, ...) of combined outputs `mixed` against `y`."""
    total = None
    for start in range(0, len(mixed), EVAL_BATCH):
        sums = objective.sums(mixed[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]).to(torch.float64)
        total = sums if total is None else total + sums
    return objective.results(total)[metric.removeprefix("val_")]


@torch.no_grad()
def select(outputs: list[torch.Tensor], y: torch.Tensor, objective: Objective, metric: str, mode: str,
           rounds: int | None = None) -> tuple[list[float], float, list[float]]:
    """Greedy ensemble selection with replacement over candidates' validation outputs.

    Returns (weights per candidate, summing to 1, zero for those never picked; the ensemble's `metric` value;
    each candidate's own value). `rounds`: additions tried (ROUNDS_PER_MEMBER per candidate by default)."""
    probabilities = objective.classification
    # Averaging happens in probability space for classification: each candidate's softmax is computed once.
    terms = [torch.softmax(o.float(), dim=-1) if probabilities else o for o in outputs]

    def value(mixed_terms: torch.Tensor) -> float:
        mixed = torch.log(mixed_terms.clamp_min(torch.finfo(torch.float32).tiny)) if probabilities else mixed_terms
        return _score(mixed, y, objective, metric)

    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    singles = [value(t) for t in terms]
    counts = [0] * len(terms)
    total = torch.zeros_like(terms[0])
    best_counts, best_value = None, None
    for step in range(rounds or ROUNDS_PER_MEMBER * len(terms)):
        tried = [value((total + t) / (step + 1)) for t in terms]
        chosen = min(range(len(terms)), key=lambda i: tried[i] if mode == "min" else -tried[i])
        counts[chosen] += 1
        total += terms[chosen]
        if best_value is None or better(tried[chosen], best_value):
            best_counts, best_value = list(counts), tried[chosen]
    n = sum(best_counts)
    return [c / n for c in best_counts], best_value, singles
