"""What an epoch costs on this machine, for the budget plan (`orchestrator.search.budget`): a few training batches
and an evaluation batch of each family of the space, timed on the driver at the space's sizes (torch is imported
only when it runs)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

PROBE_EVAL_BATCH = 256  # samples the probe evaluates at once to time a validation


@dataclass(frozen=True)
class Costs:
    """What the probe measured: per family, seconds of one training pass and of one validation; the steps of that
    pass; and the seconds the export's evaluation of the best model is expected to take."""

    epoch: dict[str, float]
    validate: dict[str, float]
    steps: int
    export_s: float


def probe(space, spec, n_train: int, *, n_validate: int = 0, n_export: int = 0, batches: int = 3, seed: int = 0,
          threads: int = 1, max_steps: int | None = None) -> Costs:
    """What an epoch of each family of `space` costs on this machine: a sampled config per family, its training
    steps timed over a few batches after warm-up ones and scaled to the epoch's steps (at most `max_steps`, the
    task's steps_per_epoch), and its forward pass timed on an evaluation batch and scaled to the `n_validate`
    samples validated every epoch; the export evaluates `n_export` samples with the costliest family."""
    import numpy as np
    import torch

    from search_spaces.domains import sample_values
    from trainables.trial import TrialConfig

    torch.set_num_threads(max(1, threads))
    rng = np.random.default_rng(seed)
    epoch, validate, steps, forward = {}, {}, [], []
    for family in space.families:
        values = TrialConfig.to_tune(family, sample_values(space.families[family], rng), sample_values(space.train, rng))
        step_s, batch_size, sample_s = _timed(TrialConfig.from_tune(values), spec, batches)
        family_steps = min(math.ceil(n_train / batch_size), max_steps or math.inf)
        epoch[family], validate[family] = step_s * family_steps, sample_s * n_validate
        steps.append(family_steps)
        forward.append(sample_s)
    return Costs(epoch, validate, max(1, round(sum(steps) / len(steps))), max(forward) * n_export)


def _timed(config, spec, batches: int) -> tuple[float, int, float]:
    """(median seconds of a training step of `config`, its batch size, seconds per sample of its evaluation)."""
    import torch

    from trainables.models import build_model
    from trainables.trial import OPTIMIZERS

    torch.manual_seed(0)
    model = build_model(config.family, config.model, spec)
    opt = OPTIMIZERS[config.train.optimizer](model.parameters(), config.train)
    bs = config.train.batch_size
    x, y, objective = _fake_batch(spec, bs)
    times = []
    for _ in range(batches + 2):  # the first steps pay one-off set-up costs (allocator, optimizer state): not counted
        began = time.perf_counter()
        loss = objective.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - began)
    model.eval()
    ex, ey, _ = _fake_batch(spec, PROBE_EVAL_BATCH)
    evals = []
    with torch.no_grad():
        for _ in range(2):  # the first pays the evaluation's own set-up
            began = time.perf_counter()
            objective.sums(model(ex), ey)
            evals.append(time.perf_counter() - began)
    return sorted(times[2:])[len(times[2:]) // 2], bs, evals[-1] / PROBE_EVAL_BATCH


def _fake_batch(spec, n: int):
    """A batch of the task's shape (values do not matter for timing)."""
    import torch

    from trainables.objectives import Objective

    if spec.input_kind == "tokens":
        x = torch.randint(0, spec.in_features, (n, spec.seq_len))
    elif spec.input_kind == "sequence":
        x = torch.randn(n, spec.seq_len, spec.in_features)
    else:
        x = torch.randn(n, spec.in_features)
    if spec.per_step:
        return x, torch.randint(0, spec.out_features, (n, spec.seq_len)), Objective({"name": "bpc"})
    return x, torch.randn(n, spec.out_features), Objective({"name": "rmse", "scale": [1.0] * spec.out_features})
