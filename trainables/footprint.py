"""What a model costs to deploy: its parameter count and its inference latency, measured the same way for every trial.

Model selection beyond the single best (the smallest model within 1% of the best, the fastest under 2 ms, a
Pareto front of error against size and speed) needs both figures for every trial, on the device it trained
on. The count is known when the model is built; the latency is measured once, after the trial's first epoch
(`TrialHost`), since the weights' values do not change how long a forward pass takes.

The method, stated wherever the figures are shown (`trainables.constants.LATENCY_METHOD`): the module in eval mode under
`torch.no_grad`, inputs of the task's shape (`example_input`), one warm-up pass (the first pays for allocations), then the median of timed
passes (at least 3, at most 9, fewer once 0.25 s is spent), the device synchronized around each on a GPU.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from trainables.tasks.base import ModelSpec

LATENCY_BATCHES = (1, 256)  # a single prediction, and a batch as a server would send
WARMUP, MIN_PASSES, MAX_PASSES = 1, 3, 9  # as trainables.constants.LATENCY_METHOD says
# Per batch size: enough passes for a stable median on small models, bounded for large ones (a trial pays this once).
TIME_CAP_S = 0.25


def count_params(model: nn.Module) -> int:
    """Every parameter's element count, trainable or not: what a deployed copy of the weights holds."""
    return sum(p.numel() for p in model.parameters())


def example_input(spec: ModelSpec, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A batch of `n` inputs of the task's shape and kind (values do not matter for timing)."""
    if spec.input_kind == "tokens":
        return torch.randint(0, spec.in_features, (n, spec.seq_len), device=device)
    if spec.input_kind == "sequence":
        return torch.randn(n, spec.seq_len, spec.in_features, device=device)
    return torch.randn(n, spec.in_features, device=device)


@torch.no_grad()
def latency_ms(model: nn.Module, spec: ModelSpec, batch: int, device: torch.device | None = None) -> float:
    """Milliseconds of one forward pass of `batch` inputs (the median, by `LATENCY_METHOD`); the model's mode is kept."""
    device = device or next(model.parameters()).device
    x = example_input(spec, batch, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    was_training = model.training
    model.eval()
    try:
        for _ in range(WARMUP):
            model(x)
        times: list[float] = []
        spent = 0.0
        while len(times) < MAX_PASSES and (len(times) < MIN_PASSES or spent < TIME_CAP_S):
            sync()
            began = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - began)
            spent += times[-1]
    finally:
        model.train(was_training)
    return statistics.median(times) * 1000.0


def latencies(model: nn.Module, spec: ModelSpec) -> dict[int, float]:
    """{batch size: milliseconds} for each of `LATENCY_BATCHES`."""
    return {batch: latency_ms(model, spec, batch) for batch in LATENCY_BATCHES}
