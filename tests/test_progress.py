"""The progress view's time left: from the epochs the scheduler is still expected to run (given the rungs each
trial has passed) at the recent pace, not from finished trials (which a scheduler that pauses trials at rungs ends
late). Driven with made-up results, no Ray."""

from __future__ import annotations

import io

import pytest

from orchestrator.search.schedulers import SCHEDULERS
from orchestrator.watch.progress import Progress
from trainables import constants as C
from trainables.trial import TrialConfig

ASHA = SCHEDULERS["asha"].options(kind="asha", max_epochs=8, grace_period=1, reduction_factor=2).model_dump()


class Trial:
    def __init__(self, trial_id: str):
        self.trial_id, self.config = trial_id, TrialConfig.to_tune("mlp", {}, {})


def feed(progress: Progress, trial: str, epoch: int, end: float, seconds: float = 1.0, **extra) -> None:
    result = {"training_iteration": epoch, "timestamp": end, "time_this_iter_s": seconds, "val_rmse": 1.0, **extra}
    progress.on_trial_result(0, [], Trial(trial), result)


def progress(trials: int, scheduler=("asha", ASHA)) -> Progress:
    view = Progress("val_rmse", "min", trials, 8, out=io.StringIO(), scheduler=scheduler)
    view.setup()
    return view


def test_asha_expects_each_trial_to_pass_a_rung_with_one_chance_in_its_factor():
    """Rungs 1, 2, 4 of 8 at x2: a new trial 1 + 1/2 + 2/4 + 4/8 epochs; one at a rung the rest of that series;
    one between two rungs reaches the next for sure."""
    left = SCHEDULERS["asha"].epochs_left
    assert [left(ASHA, e) for e in (0, 1, 2, 3, 4, 8)] == pytest.approx([2.5, 1.5, 2.0, 3.0, 2.0, 0.0])
    assert SCHEDULERS["fifo"].epochs_left({"max_epochs": 6}, 2) == 4.0
    for name in ("fifo", "pbt", "median", "hyperband"):
        assert SCHEDULERS[name].expected_epochs(SCHEDULERS[name].options(kind=name, max_epochs=6).model_dump()) == 6.0


def test_time_left_is_the_epochs_left_at_the_recent_pace():
    """16 trials: 10 have run their first epoch (one a second, one slot), 5 of them promoted and running on, 5 paused
    at the rung; 6 have not started. Left: 6 x 2.5 for the new ones, 5 x (1 + 2) for the running ones (the epoch to
    rung 2, then its chance), 5 x 1.5 / 2 for the paused ones (not the best at their rung: once more discounted)."""
    view = progress(16)
    assert view.time_left(now=0.0) is None, "nothing to go on before the first epoch"
    for i in range(10):
        feed(view, f"t{i}", 1, end=1.0 + i)
    view.paused = {f"t{i}" for i in range(5, 10)}
    assert view.epochs_left() == pytest.approx(15 + 15 + 3.75)
    assert view.time_left(now=10.0) == pytest.approx((33.75, 33.75))


def test_the_pace_is_the_recent_one():
    """No early stopping, 4 trials of 8 epochs: 10 epochs of 1 s, then 6 of 4 s (larger models): over the last half
    of the 34 s, 5 epochs ended, 5 / 17 a second, not the run's 16 / 34."""
    view = progress(4, scheduler=("fifo", {"max_epochs": 8}))
    ends = [1.0 + i for i in range(10)] + [10.0 + 4 * (i + 1) for i in range(6)]
    for i, end in enumerate(ends):
        feed(view, f"t{i % 4}", 1 + i // 4, end=end)
    assert view.epochs_left() == pytest.approx(4 * 8 - 16)
    assert view.time_left(now=34.0) == pytest.approx((16 / (5 / 17), 16 / (5 / 17)))


def test_an_early_estimate_is_a_range_and_ended_trials_count_nothing():
    view = progress(16)
    for i in range(4):
        feed(view, f"t{i}", 1, end=1.0 + i)
    view.paused = {"t0", "t1", "t2", "t3"}
    assert view.time_left(now=4.0) == pytest.approx((0.75 * 33, 1.5 * 33))  # 12 x 2.5 + 4 x 0.75 epochs, one a second
    # An infeasible trial ran nothing and will run nothing; an ended trial has nothing left.
    view.last["bad"] = {C.INFEASIBLE: "refused", "training_iteration": 1}
    view.on_trial_complete(0, [], Trial("bad"))
    view.last["t0"] = {"training_iteration": 1}
    view.on_trial_complete(0, [], Trial("t0"))
    assert view.epochs_left() == pytest.approx(11 * 2.5 + 3 * 0.75)  # 16 less 2 ended less 3 paused

