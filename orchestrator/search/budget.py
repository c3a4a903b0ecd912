"""Planning a search to a time budget: `--budget 10m` becomes num_samples, max_epochs, ASHA's rungs, concurrency
and, when one pass over the data is too long for that, a shorter epoch, chosen so that the expected total fits,
from what an epoch of each family costs here.

The plan's model is `plan()`: a pure function of measured costs and a budget, tested with no training. When a
whole pass does not fit a search, the epoch becomes `task.steps_per_epoch` steps (sample size as the fidelity:
ASHA's rungs count samples, and successive short epochs train on new samples, `trainables.training`).
`probe()` measures the costs on the driver (a few training batches and an evaluation batch per family at the
space's sizes); its time is counted in the budget. The plan's trial count only sizes the search: the trial
count the search is given is a ceiling the time could hold (`ceiling`), and the time budget ends it (Tune stops
the running trials at their next epoch, `time_budget_s`), so the budget is used even when trials run faster than
probed; then the best model so far is exported.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from orchestrator.search.cost_probe import Costs, probe
from orchestrator.search.schedulers.base import epochs_per_trial, rungs

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
# What a budgeted run spends besides training, in seconds, measured on 2 cores: Ray's start with the imports
# ahead (~8 s before the first epoch), and the export of the best model with the summary (~2 s).
STARTUP_S = 8.0
# The export's evaluation is probed on one sampled size per family; the best model is often one of the larger ones
# (measured: 46 s where the probe said ~31 s on a 200 MB corpus), so the plan keeps half as much again in reserve.
EXPORT_MARGIN = 1.5
EXPORT_S = 3.0
REDUCTION_FACTOR = 3  # ASHA keeps the best third at each rung: rungs 1, 3, 9, 27
LADDER = (1, 3, 9, 27, 81)  # max_epochs a plan chooses from: ASHA's rungs with reduction factor 3
TOP_RUNG_TRIALS = 2  # a plan expects at least this many trials to reach max_epochs
MIN_TRIALS_PER_SLOT = 3  # and at least this many trials per concurrent slot, so the search is a search
MAX_TRIALS = 2000
SHORT_LADDER_TOP = 9  # whole passes unless they fall short of a search this deep; shortened epochs aim at it
MIN_STEPS = 20  # the shortest epoch a plan makes: fewer steps would be mostly validation and reporting
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
    epoch_s: float  # the mean cost of one epoch of one trial (its training and its validation), over the families
    expected_s: float  # the expected wall time of the trials, at `concurrency` at once
    asha: bool = True
    started: float = 0.0  # time.monotonic() when the command began: the budget counts from there
    # A shortened epoch (sample size as the fidelity): its training steps, and the share of a full pass it trains.
    # None and 1.0 when an epoch is a whole pass over the training split.
    steps_per_epoch: int | None = None
    fraction: float = 1.0
    export_s: float = EXPORT_S  # what the export of the best model is expected to take, kept out of the search

    def describe(self) -> str:
        stops = f"ASHA rungs {'/'.join(map(str, rungs(self.max_epochs, self.grace_period, self.reduction_factor)[:-1]))}" if (
            self.asha and self.max_epochs > self.grace_period) else "no early stopping"
        return (f"budget {clock_text(self.budget_s)}: ~{self.num_samples} trials, up to {self.max_epochs} epochs, {stops}, "
                f"{self.concurrency} at once (an epoch ~{self.epoch_s:.1f} s)")

    def sample_note(self) -> str:
        """What a shortened epoch is, in words ('' for whole passes)."""
        if self.steps_per_epoch is None:
            return ""
        share = f"{self.fraction:.0%}" if self.fraction >= 0.01 else f"{self.fraction:.2%}"
        return (f"an epoch here is {self.steps_per_epoch} steps, {share} of the training data (one pass would not fit the "
                f"budget); {self.max_epochs} such epochs at the last rung, new samples each epoch")


class BudgetTooSmall(ValueError):
    """The budget cannot hold the probe, start-up and export, and two trials of the shortest epoch."""


def plan(budget_s: float, epoch_costs: dict[str, float], concurrency: int, *, spent_s: float = 0.0, asha: bool = True,
         steps: int | None = None, validate_costs: dict[str, float] | None = None, export_s: float = EXPORT_S) -> Plan:
    """The search the budget holds: max_epochs on ASHA's ladder (1, 3, 9, 27, 81), trials, and when one pass over the
    data is too long for that, a shorter epoch (sample size as the fidelity: ASHA's rungs count samples).

    Whole passes when they give a search with SHORT_LADDER_TOP epochs or more that still expects TOP_RUNG_TRIALS
    trials at the top and MIN_TRIALS_PER_SLOT trials per slot (the largest such max_epochs, as many trials as the
    budget then holds). Otherwise the epoch is shortened to the steps that let the largest max_epochs up to
    SHORT_LADDER_TOP hold that many trials, keeping at least MIN_STEPS steps and (above max_epochs 1) at least as
    much training as validation per epoch; with max_epochs 1, fewer trials down to two. A budget that cannot hold two
    trials of MIN_STEPS steps is refused, with the budget that would.

    `epoch_costs`: seconds of one training pass (of `steps` steps, when given) of each family; `validate_costs`:
    seconds of one validation of each family (every epoch pays it, shortened or not); the searcher starts out
    sampling families evenly, so the plan uses their means, and keeps the costliest epoch in reserve (Tune stops
    running trials at their next epoch after the budget). `spent_s`: budget already spent (loading, the probe);
    `export_s`: the export of the best model after the search. `steps` None: the epoch cannot be shortened."""
    validate_costs = validate_costs or {}
    families = list(epoch_costs)
    train, val = _mean(epoch_costs, families), _mean(validate_costs, families)
    train_max = max(epoch_costs.values())
    val_max = max((validate_costs.get(f, 0.0) for f in families), default=0.0)
    left = budget_s - spent_s - STARTUP_S - export_s

    def made(trials: int, max_epochs: int, fraction: float, short: bool) -> Plan:
        per_trial = epochs_per_trial(max_epochs, 1, REDUCTION_FACTOR, asha) * (train * fraction + val) + TRIAL_OVERHEAD_S
        slots = min(concurrency, trials)
        return Plan(budget_s, trials, max_epochs, 1, REDUCTION_FACTOR, slots, train * fraction + val, trials * per_trial / slots,
                    asha, steps_per_epoch=round(fraction * steps) if short else None, fraction=fraction, export_s=export_s)

    whole, whole_enough = _whole_passes(left, train + val, train_max + val_max, concurrency, asha)
    if whole is not None and (steps is None or (whole_enough and whole >= SHORT_LADDER_TOP)):
        return made(max(1, _trials(left - train_max - val_max, whole, train + val, concurrency, asha)), whole, 1.0, False)
    if steps is None:
        raise BudgetTooSmall(_too_small(budget_s, left, train + val, train_max + val_max, None, concurrency))
    shortest = min(1.0, MIN_STEPS / steps)
    for max_epochs in [m for m in LADDER if m <= SHORT_LADDER_TOP][::-1]:
        trials = least_trials(max_epochs, concurrency, asha)
        fraction = _fraction(left, trials, max_epochs, train, val, train_max, val_max, concurrency, asha)
        if fraction >= 1.0 and whole is not None and whole_enough:
            break  # whole passes hold this search already: the whole-pass plan below
        if fraction >= shortest and (max_epochs == 1 or train * fraction >= val):
            fraction = min(1.0, math.floor(fraction * steps) / steps)
            room = left - train_max * fraction - val_max
            return made(max(trials, _trials(room, max_epochs, train * fraction + val, concurrency, asha)), max_epochs, fraction,
                        fraction < 1.0)
    if whole is not None and whole_enough:
        return made(_trials(left - train_max - val_max, whole, train + val, concurrency, asha), whole, 1.0, False)
    for trials in range(least_trials(1, concurrency, asha) - 1, 1, -1):  # the last resort: fewer trials of one short epoch
        fraction = _fraction(left, trials, 1, train, val, train_max, val_max, concurrency, asha)
        if fraction >= shortest:
            fraction = min(1.0, math.floor(fraction * steps) / steps)
            return made(trials, 1, fraction, fraction < 1.0)
    raise BudgetTooSmall(_too_small(budget_s, left, train * shortest + val, train_max * shortest + val_max,
                                    min(MIN_STEPS, steps), concurrency))


def least_trials(max_epochs: int, concurrency: int, asha: bool = True) -> int:
    """The fewest trials a plan of `max_epochs` accepts: MIN_TRIALS_PER_SLOT per slot, and under ASHA enough that
    TOP_RUNG_TRIALS are expected to reach the top rung."""
    top = TOP_RUNG_TRIALS * REDUCTION_FACTOR ** (len(rungs(max_epochs, 1, REDUCTION_FACTOR)) - 1) if asha else TOP_RUNG_TRIALS
    return max(MIN_TRIALS_PER_SLOT * concurrency, top)


def _mean(costs: dict[str, float], families: list[str]) -> float:
    return sum(costs.get(f, 0.0) for f in families) / len(families)


def _trials(room: float, max_epochs: int, epoch_s: float, concurrency: int, asha: bool) -> int:
    """Trials of `max_epochs` epochs of `epoch_s` that `room` seconds hold at `concurrency` at once."""
    per_trial = epochs_per_trial(max_epochs, 1, REDUCTION_FACTOR, asha) * epoch_s + TRIAL_OVERHEAD_S
    return min(MAX_TRIALS, int(max(0.0, room) * concurrency // per_trial))


def _whole_passes(left: float, epoch_s: float, worst_s: float, concurrency: int, asha: bool) -> tuple[int | None, bool]:
    """(max_epochs, enough) of whole passes: the largest max_epochs on the ladder whose search is enough (see
    `plan`), else the smallest that holds a trial (enough False); None when not even one epoch fits."""
    room = left - worst_s
    if room < epoch_s:
        return None, False
    best = None
    for max_epochs in LADDER:
        if _trials(room, max_epochs, epoch_s, concurrency, asha) >= least_trials(max_epochs, concurrency, asha):
            best = max_epochs
    return (best, True) if best is not None else (LADDER[0], False)


def _fraction(left: float, trials: int, max_epochs: int, train: float, val: float, train_max: float, val_max: float,
              concurrency: int, asha: bool) -> float:
    """The share of a pass an epoch may train for `trials` trials of `max_epochs` to fit in `left` seconds, with the
    costliest epoch in reserve: left = trials (e (train f + val) + overhead) / slots + train_max f + val_max."""
    slots = min(concurrency, trials)
    e = epochs_per_trial(max_epochs, 1, REDUCTION_FACTOR, asha)
    return (left - val_max - trials * (e * val + TRIAL_OVERHEAD_S) / slots) / (trials * e * train / slots + train_max)


def _too_small(budget_s: float, left: float, epoch_s: float, worst_s: float, steps: int | None, concurrency: int) -> str:
    """The refusal: what the shortest search costs here, and the budget that holds it (two trials of one epoch)."""
    need = budget_s - left + worst_s + 2 * (epoch_s + TRIAL_OVERHEAD_S) / min(2, concurrency)
    what = f"an epoch of {steps} steps" if steps is not None and steps > 0 else "an epoch"
    return (f"{what} costs ~{epoch_s:.1f} s here and start-up and export ~{budget_s - left:.0f} s, so the budget "
            f"{clock_text(budget_s)} holds no search of two trials; give at least {clock_text(math.ceil(need * 1.05))}")


# A sampled validation may take at most this share of the budget per epoch: every epoch of every trial pays it, and a
# short budget's epochs are short (a 3m budget: 3 s). Never fewer than MIN_SAMPLE_CHARS characters (a bpc estimate's
# standard error stays near 0.01 bits there).
VALIDATE_SHARE, MIN_SAMPLE_CHARS = 1 / 60, 100_000


def _smaller_sample(p, costs, budget_s: float):
    """(p, its config, costs) with a sampled validation made smaller when its cost per epoch is over VALIDATE_SHARE of
    the budget (`task.sample_chars`, written to the run's experiment.yaml, so a resume validates alike)."""
    from dataclasses import replace

    from trainables.tasks.charlm import with_sample_chars

    c, val = p.exp.config, p.data.splits["val"]
    slowest, sample = max(costs.validate.values(), default=0.0), getattr(val, "sample", None)
    if sample is None or "sample_chars" not in type(c.task).model_fields or slowest <= budget_s * VALIDATE_SHARE:
        return p, c, costs
    chars = max(MIN_SAMPLE_CHARS, int(c.task.sample_chars * budget_s * VALIDATE_SHARE / slowest))
    if chars >= c.task.sample_chars:
        return p, c, costs
    config = c.model_copy(update={"task": c.task.model_copy(update={"sample_chars": chars})})
    data = with_sample_chars(p.data, chars)
    scale = len(data.splits["val"].sample) / len(sample)
    costs = replace(costs, validate={f: v * scale for f, v in costs.validate.items()}, export_s=costs.export_s * scale)
    return replace(p, exp=replace(p.exp, config=config), data=data), config, costs


def apply(p, began: float, concurrency: int):
    """The prepared experiment with its search sized to its `budget` (probed now), and the plan; the budget counts
    from `began` (time.monotonic() when the command started)."""
    from dataclasses import replace

    from orchestrator.search.schedulers import SCHEDULERS
    from orchestrator.search.searchers import SEARCHERS

    c = p.exp.config
    budget_s = parse_duration(c.budget)
    splits = p.data.splits
    # A large validation split is validated on a fixed sample during the search (`sample`).
    sample = getattr(splits["val"], "sample", None)
    # The export of a budgeted run evaluates a large split on its seeded sample (`export_best(sampled=True)`).
    n_export = sum(len(s) if getattr(s, "sample", None) is None else len(s.sample) for s in (splits["val"], splits["test"]))
    costs = probe(p.exp.space, p.data.spec, len(splits["train"]), n_validate=len(splits["val"]) if sample is None else len(sample),
                  n_export=n_export, seed=c.seed, threads=int(c.resources.cpu),
                  max_steps=c.task.steps_per_epoch)
    p, c, costs = _smaller_sample(p, costs, budget_s)
    # N data-parallel workers each train 1/N of an epoch: an ideal-scaling guess (the gradient exchange costs
    # some), which the trial-count ceiling and the time budget absorb. One of them validates.
    costs = replace(costs, epoch={family: seconds / c.resources.workers for family, seconds in costs.epoch.items()})
    record = SCHEDULERS[c.scheduler.kind]
    asha = record.plans_rungs
    chosen = plan(budget_s, costs.epoch, concurrency, spent_s=time.monotonic() - began, asha=asha, steps=costs.steps,
                  validate_costs=costs.validate, export_s=EXPORT_S + EXPORT_MARGIN * costs.export_s)
    sched = {"max_epochs": chosen.max_epochs, **({"grace_period": chosen.grace_period, "reduction_factor": chosen.reduction_factor,
                                                  "promote": c.scheduler.promote} if asha else {})}  # the user's variant kept
    scheduler = record.options(kind=c.scheduler.kind, **sched)
    task = c.task if chosen.steps_per_epoch is None else c.task.model_copy(update={"steps_per_epoch": chosen.steps_per_epoch})
    # Written to the run's experiment.yaml as a plan, not a budget: a resume or an extension continues this search
    # (its epochs' steps included).
    left = max(1.0, budget_s - (time.monotonic() - began) - chosen.export_s)
    trials = ceiling(chosen, costs, left, population=record.own_population)
    per_sample = SEARCHERS[c.searcher].planned(p.exp.space, 1, c.seed)  # the grid's size: num_samples repeats it
    config = c.model_copy(update={"num_samples": max(1, trials // per_sample), "scheduler": scheduler, "task": task,
                                  "max_concurrent": chosen.concurrency, "time_budget_s": left, "budget": None})
    chosen = replace(chosen, started=began)
    return replace(p, exp=replace(p.exp, config=config), plan=chosen), chosen


def ceiling(chosen: Plan, costs: Costs, left: float, *, population: bool = False) -> int:
    """The trial count a budgeted search is given: the time budget, not the count, ends it. As many trials as `left`
    seconds could hold if every one were stopped after one epoch of the cheapest family, so that a probe that
    overestimated the epochs (one sampled size per family) or trials stopped early never leave the budget unused.
    A population the scheduler evolves itself (PBT) trains together: it keeps about the planned size."""
    planned = max(2 * chosen.num_samples, chosen.num_samples + 2 * chosen.concurrency)
    if population:
        return min(MAX_TRIALS, planned)
    # Half the measured overhead per trial: a ceiling too high costs nothing, one too low leaves the budget unused.
    cheapest = min(costs.epoch[f] * chosen.fraction + costs.validate.get(f, 0.0) for f in costs.epoch) + TRIAL_OVERHEAD_S / 2
    return min(MAX_TRIALS, max(planned, int(left * chosen.concurrency / cheapest)))
