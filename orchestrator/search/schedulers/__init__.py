"""The schedulers a search can use, one record each: its options, its builder, its help line.

A scheduler decides *when to stop* a trial; it never sees the search space. To add one, add its options
model (with `kind: Literal[...]`) and a `Scheduler` record to SCHEDULERS: validation, `orchestrator list`,
the run header, the report and the parametrized tests pick it up from there. Ray is imported inside the
builders, so validating a config stays fast.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping, Optional

from pydantic import Field, model_validator

from orchestrator.search.schedulers.base import (
    EPOCHS,
    Scheduler,
    SchedulerOptions,
    epochs_per_trial,
)


class AshaOptions(SchedulerOptions):
    kind: Literal["asha"] = "asha"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)
    # The default by `python -m benchmarks.quality` (benchmarks/README.md "Which searcher and scheduler pay?"; docs/decisions/0002): with promotions TPE + ASHA
    # ended better and reached random search's result sooner on all three tasks than with Ray's stopping ASHA.
    promote: bool = Field(True, description="pause trials at each rung and promote the best (ASHA's paper); false: stop them (Ray's ASHA)")

    @model_validator(mode="after")
    def grace_within_max(self):
        if self.grace_period > self.max_epochs:
            raise ValueError(f"`grace_period <= max_epochs` must hold, but got ({self.grace_period=}, {self.max_epochs=})")
        return self


class FifoOptions(SchedulerOptions):
    kind: Literal["fifo"]


class HyperbandOptions(SchedulerOptions):
    kind: Literal["hyperband"]
    reduction_factor: float = Field(3.0, gt=1)


class MedianOptions(SchedulerOptions):
    kind: Literal["median"]
    grace_period: int = Field(1, ge=1, description="epochs before a trial can be stopped")
    min_samples_required: int = Field(3, ge=1, description="trials that must have reached an epoch before the rule judges it")


class PbtOptions(SchedulerOptions):
    kind: Literal["pbt"]
    perturbation_interval: int = Field(2, ge=1, description="epochs between two exploit/explore steps of a trial")
    quantile_fraction: float = Field(0.25, gt=0, le=0.5, description="the bottom fraction copies the top fraction")
    resample_probability: float = Field(0.25, ge=0, le=1, description="chance a mutated value is drawn anew instead of scaled")


# Training hyperparameters PBT may change in a running trial: they act through the optimizer or the data
# order, so a trial continues from another's checkpoint with them. The family and its hyperparameters
# (the weights' shapes), the optimizer kind and the LR schedule (their saved state) cannot change mid-trial.
PBT_MUTABLE = ("lr", "weight_decay", "momentum", "batch_size", "grad_clip")


def _asha(opts: AshaOptions, space=None, searcher=None):
    from orchestrator.search.schedulers.asha import (
        ResumableASHA,
        ResumablePromotingASHA,
    )

    if opts.promote:
        return ResumablePromotingASHA(EPOCHS, opts.max_epochs, opts.grace_period, opts.reduction_factor)
    return ResumableASHA(time_attr=EPOCHS, max_t=opts.max_epochs, grace_period=opts.grace_period, reduction_factor=opts.reduction_factor)


def _fifo(opts: FifoOptions, space=None, searcher=None):
    from orchestrator.search.schedulers.resumable import ResumableFIFO

    return ResumableFIFO()


def _hyperband(opts: HyperbandOptions, space=None, searcher=None):
    from orchestrator.search.schedulers.resumable import (
        ResumableHyperBand,
        ResumableHyperBandForBOHB,
    )

    # BOHB's searcher learns from each rung's budget, which only its own HyperBand reports.
    cls = ResumableHyperBandForBOHB if searcher is not None and searcher.learns_budgets else ResumableHyperBand
    return cls(time_attr=EPOCHS, max_t=opts.max_epochs, reduction_factor=opts.reduction_factor)


def _median(opts: MedianOptions, space=None, searcher=None):
    from orchestrator.search.schedulers.resumable import ResumableMedian

    return ResumableMedian(time_attr=EPOCHS, grace_period=opts.grace_period, min_samples_required=opts.min_samples_required)


def pbt_mutations(space) -> dict[str, Any]:
    """The training hyperparameters of `space` that PBT mutates, as Ray domains (lists for choices)."""
    from search_spaces.domains import Domain
    from search_spaces.tune_space import to_tune_domain

    return {k: to_tune_domain(d) for k, d in space.train.items() if k in PBT_MUTABLE and isinstance(d, Domain)}


def _pbt_problem(space) -> Optional[str]:
    if pbt_mutations(space):
        return None
    return f"pbt mutates training hyperparameters ({', '.join(PBT_MUTABLE)}), but the space {space.source} searches none of them"


def _pbt(opts: PbtOptions, space=None, searcher=None):
    from orchestrator.search.schedulers.resumable import ResumablePBT

    return ResumablePBT(
        time_attr=EPOCHS, perturbation_interval=opts.perturbation_interval, quantile_fraction=opts.quantile_fraction,
        resample_probability=opts.resample_probability, hyperparam_mutations=pbt_mutations(space),
    )


def _hyperband_together(o: Mapping[str, Any]) -> int:
    """Trials that must run at once before HyperBand stops any: Ray's first bracket (s = 0) holds s_max + 1 trials,
    runs each to max_epochs without a rung and takes every new trial while it has room, so only a trial beyond
    it, running beside them, joins a bracket that halves (measured against Ray's scheduler in tests/test_search.py)."""
    s_max_1 = int(round(math.log(o["max_epochs"]) / math.log(o["reduction_factor"]))) + 1
    return s_max_1 + 1


def _asha_epochs(o: Mapping[str, Any], epoch: int) -> float:
    """Under ASHA a trial passes each rung with probability 1 / reduction_factor."""
    return epochs_per_trial(o["max_epochs"], o["grace_period"], o["reduction_factor"], done=epoch)


def _pbt_together(o: Mapping[str, Any]) -> int:
    """Trials PBT needs running together so that its bottom and top quantiles hold one each."""
    return math.ceil(1 / o["quantile_fraction"])


SCHEDULERS: dict[str, Scheduler] = {
    "asha": Scheduler(
        "asha", AshaOptions, _asha,
        ("asynchronous successive halving (default): pauses trials at rungs grace_period * reduction_factor^k and resumes "
         "the best of each; promote: false stops the worst instead (Ray's ASHA)"),
        lambda o: (f"asha (max {o['max_epochs']} epochs, grace {o['grace_period']}, x{o['reduction_factor']:g}"
                   + (", promoting" if o.get("promote") else ", stopping") + ")"),  # runs written before `promote`: stopping
        plans_rungs=True,
        epochs_left=_asha_epochs,
    ),
    "fifo": Scheduler(
        "fifo", FifoOptions, _fifo, "no early stopping: every trial runs max_epochs",
        lambda o: f"fifo (max {o['max_epochs']} epochs)",
    ),
    "hyperband": Scheduler(
        "hyperband", HyperbandOptions, _hyperband,
        "synchronous HyperBand: brackets of successive halving, pausing trials at each rung (BOHB's scheduler)",
        lambda o: f"hyperband (max {o['max_epochs']} epochs, x{o['reduction_factor']:g})",
        together=_hyperband_together,
    ),
    "median": Scheduler(
        "median", MedianOptions, _median,
        "median stopping rule: stops a trial whose best so far is worse than the median of the others' running means",
        lambda o: f"median (max {o['max_epochs']} epochs, grace {o['grace_period']}, min {o['min_samples_required']} trials)",
    ),
    "pbt": Scheduler(
        "pbt", PbtOptions, _pbt,
        "population-based training: bad trials continue from good ones' checkpoints with mutated training hyperparameters",
        lambda o: f"pbt (max {o['max_epochs']} epochs, every {o['perturbation_interval']}, bottom {o['quantile_fraction']:g})",
        searchers=frozenset({"random"}),
        pairing_rule="PBT draws its population at random and then evolves it itself; Ray refuses a searcher beside it",
        problem=_pbt_problem,
        own_population=True,
        together=_pbt_together,
    ),
}
DEFAULT_SCHEDULER = "asha"


def pairing_problem(searcher: str, scheduler: str) -> Optional[str]:
    """Why a searcher cannot work with a scheduler (the rule, from whichever record states it), or None.

    The one place pairings are decided: validation, `orchestrator list` and the tests ask here.
    """
    from orchestrator.search.searchers import SEARCHERS

    for record, other, what, allowed in ((SCHEDULERS[scheduler], searcher, "searcher", SCHEDULERS[scheduler].searchers),
                                         (SEARCHERS[searcher], scheduler, "scheduler", SEARCHERS[searcher].schedulers)):
        if allowed is not None and other not in allowed:
            kind = "scheduler" if what == "searcher" else "searcher"
            rule = f" ({record.pairing_rule})" if record.pairing_rule else ""
            return f"{kind} '{record.name}' works with {what} {', '.join(sorted(allowed))} only, but got {what} '{other}'{rule}"
    return None

