"""Planning a search to a time budget: `--budget 10m` becomes num_samples, max_epochs, ASHA's rungs and
concurrency chosen so that the expected total fits, from what an epoch of each family costs here.

The plan's model is `plan()`: a pure function of measured epoch costs and a budget, tested with no training.
`probe()` measures those costs on the driver (a few training batches per family at the space's sizes);
its time is counted in the budget. At the budget, Tune stops the running trials at their next epoch
(`time_budget_s`), and the best model so far is exported.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from orchestrator.search.schedulers.base import epochs_per_trial, rungs

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
# What a budgeted run spends besides training, in seconds, measured on 2 cores: Ray's start with the imports
# ahead (~8 s before the first epoch), and the export of the best model with the summary (~2 s).
STARTUP_S = 8.0
EXPORT_S = 3.0
REDUCTION_FACTOR = 3  # ASHA keeps the best third at each rung: rungs 1, 3, 9, 27
LADDER = (1, 3, 9, 27, 81)  # max_epochs a plan chooses from: ASHA's rungs with reduction factor 3
TOP_RUNG_TRIALS = 2  # a plan expects at least this many trials to reach max_epochs
MIN_TRIALS_PER_SLOT = 3  # and at least this many trials per concurrent slot, so the search is a search
MAX_TRIALS = 2000
# Per trial besides its epochs: Tune creates it, the reused actor builds its model and optimizer (~0.5 s here).
TRIAL_OVERHEAD_S = 0.5


def parse_duration(text: str | float | int) -> float:
    """Seconds in `90s`, `10m`, `2h` or a plain number of seconds; a ValueError stating the rule otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = DURATION.match(str(text))
        if not match:
            raise ValueError(f"a duration is a number with an optional unit s, m or h (90s, 10m, 2h), but got {text!r}")
        seconds = float(match.group(1)) * UNITS[match.group(2)]
    if not seconds > 0:
        raise ValueError(f"a budget must be more than 0 seconds, but got {text!r}")
    return seconds


def clock_text(seconds: float) -> str:
    """`90s`, `10m`, `1h30m`: a budget as a user would write it."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f}m"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


@dataclass(frozen=True)
class Plan:
    """A search sized to a budget, and what it expects to spend."""

    budget_s: float
    num_samples: int
    max_epochs: int
    grace_period: int
    reduction_factor: int
    concurrency: int
    epoch_s: float  # the mean cost of one epoch of one trial, over the families
    expected_s: float  # the expected wall time of the trials, at `concurrency` at once
    asha: bool = True
    started: float = 0.0  # time.monotonic() when the command began: the budget counts from there

    def describe(self) -> str:
        stops = f"ASHA rungs {'/'.join(map(str, rungs(self.max_epochs, self.grace_period, self.reduction_factor)[:-1]))}" if (
            self.asha and self.max_epochs > self.grace_period) else "no early stopping"
        return (f"budget {clock_text(self.budget_s)}: ~{self.num_samples} trials, up to {self.max_epochs} epochs, {stops}, "
                f"{self.concurrency} at once (an epoch ~{self.epoch_s:.1f} s)")


class BudgetTooSmall(ValueError):
    """The budget cannot hold even one epoch of one trial after start-up."""


def plan(budget_s: float, epoch_costs: dict[str, float], concurrency: int, *, spent_s: float = 0.0, asha: bool = True) -> Plan:
    """The largest max_epochs (on ASHA's ladder 1, 3, 9, 27, 81) whose search still expects TOP_RUNG_TRIALS trials at
    the top and MIN_TRIALS_PER_SLOT trials per slot, and as many trials as the budget then holds.

    `epoch_costs`: seconds per epoch of each family (the searcher starts out sampling families evenly, so the
    plan uses their mean); `spent_s`: budget already spent (the probe)."""
    left = budget_s - spent_s - STARTUP_S - EXPORT_S
    epoch_s = sum(epoch_costs.values()) / len(epoch_costs)
    # Tune stops running trials at their next epoch after the budget: keep the longest epoch in reserve.
    left -= max(epoch_costs.values())
    if left < epoch_s:
        raise BudgetTooSmall(
            f"an epoch costs ~{epoch_s:.1f} s here and start-up ~{STARTUP_S + EXPORT_S + spent_s:.0f} s, so the budget "
            f"{clock_text(budget_s)} holds no trial; give at least {clock_text(math.ceil(budget_s - left + 3 * epoch_s))}")
    best = None
    for max_epochs in LADDER:
        per_trial = epochs_per_trial(max_epochs, 1, REDUCTION_FACTOR, asha) * epoch_s + TRIAL_OVERHEAD_S
        trials = min(MAX_TRIALS, int(left * concurrency // per_trial))
        reach_top = trials / REDUCTION_FACTOR ** (len(rungs(max_epochs, 1, REDUCTION_FACTOR)) - 1) if asha else trials
        enough = reach_top >= TOP_RUNG_TRIALS and trials >= MIN_TRIALS_PER_SLOT * concurrency
        if trials >= 1 and (best is None or enough):
            slots = min(concurrency, trials)
            best = Plan(budget_s, trials, max_epochs, 1, REDUCTION_FACTOR, slots, epoch_s, trials * per_trial / slots, asha)
    return best


def probe(space, spec, n_train: int, *, batches: int = 3, seed: int = 0, threads: int = 1, max_steps: int | None = None) -> dict[str, float]:
    """Seconds per training epoch of each family of `space` on this machine: a sampled config per family, timed
    over a few batches after warm-up ones, scaled to the epoch's batches (at most `max_steps`, the task's
    steps_per_epoch; validation adds about a tenth)."""
    import numpy as np
    import torch

    from search_spaces.domains import sample_values
    from trainables.trial import TrialConfig

    torch.set_num_threads(max(1, threads))
    rng = np.random.default_rng(seed)
    costs = {}
    for family in space.families:
        values = TrialConfig.to_tune(family, sample_values(space.families[family], rng), sample_values(space.train, rng))
        costs[family] = _epoch_seconds(TrialConfig.from_tune(values), spec, n_train, batches, max_steps)
    return costs


def _epoch_seconds(config, spec, n_train: int, batches: int, max_steps: int | None) -> float:
    """Median seconds of a training step of `config`, times the steps of an epoch, plus a tenth for validation."""
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
    steps = min(math.ceil(n_train / bs), max_steps or math.inf)
    return sorted(times[2:])[len(times[2:]) // 2] * steps * 1.1


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


def apply(p, began: float, concurrency: int):
    """The prepared experiment with its search sized to its `budget` (probed now), and the plan; the budget counts
    from `began` (time.monotonic() when the command started)."""
    from dataclasses import replace

    from orchestrator.search.schedulers import SCHEDULERS

    c = p.exp.config
    budget_s = parse_duration(c.budget)
    n_train = len(p.data.splits["train"])
    costs = probe(p.exp.space, p.data.spec, n_train, seed=c.seed, threads=int(c.resources.cpu), max_steps=c.task.steps_per_epoch)
    # N data-parallel workers each train 1/N of an epoch: an ideal-scaling guess (the gradient exchange costs
    # some), which the trial-count ceiling and the time budget absorb.
    costs = {family: seconds / c.resources.workers for family, seconds in costs.items()}
    asha = SCHEDULERS[c.scheduler.kind].plans_rungs
    chosen = plan(budget_s, costs, concurrency, spent_s=time.monotonic() - began, asha=asha)
    sched = {"max_epochs": chosen.max_epochs, **({"grace_period": chosen.grace_period, "reduction_factor": chosen.reduction_factor,
                                                  "promote": c.scheduler.promote} if asha else {})}  # the user's variant kept
    scheduler = SCHEDULERS[c.scheduler.kind].options(kind=c.scheduler.kind, **sched)
    # Written to the run's experiment.yaml as a plan, not a budget: a resume continues this search.
    left = budget_s - (time.monotonic() - began) - EXPORT_S
    # num_samples is a ceiling above the plan's estimate, and the time budget ends the search: a probe that
    # overestimated the epochs' cost (one sampled size per family) must not leave the budget half used.
    ceiling = min(MAX_TRIALS, max(2 * chosen.num_samples, chosen.num_samples + 2 * chosen.concurrency))
    config = c.model_copy(update={"num_samples": ceiling, "scheduler": scheduler, "max_concurrent": chosen.concurrency,
                                  "time_budget_s": max(1.0, left), "budget": None})
    chosen = replace(chosen, started=began)
    return replace(p, exp=replace(p.exp, config=config), plan=chosen), chosen
