"""The progress view's time left: from the epochs the scheduler is still expected to run (given the rungs each
trial has passed) at the recent pace, not from finished trials (which a scheduler that pauses trials at rungs ends
late). Driven with made-up results, no Ray."""

from __future__ import annotations

import io

import pytest

from orchestrator.search.schedulers import SCHEDULERS
from orchestrator.search.schedulers.base import rung_epochs_left
from orchestrator.watch.progress import END_S, Progress
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
    """16 trials, rungs 1, 2, 4 of 8 at x2: every trial reaches rung 1, 8 rung 2, 4 rung 4 and 2 the end, 40 epochs in
    all; 10 have run their first epoch (one a second, one slot), so 30 are left, whichever of them are paused. Then
    the export and the summary (`END_S`)."""
    view = progress(16)
    assert view.time_left(now=0.0) is None, "nothing to go on before the first epoch"
    for i in range(10):
        feed(view, f"t{i}", 1, end=1.0 + i)
    view.paused = {f"t{i}" for i in range(5, 10)}
    assert view.epochs_left() == pytest.approx(40 - 10)
    assert view.time_left(now=10.0) == pytest.approx((30 + END_S, 30 + END_S))


def test_the_end_of_a_search_is_counted_by_rung():
    """Every trial has arrived: 2 at the end, 2 more at rung 4, 4 more at rung 2, 8 paused at rung 1. The rungs keep
    just as many as have gone on, so nothing is left, where a per-trial chance would still count the paused ones."""
    view = progress(16)
    epochs = [8, 8, 4, 4, 2, 2, 2, 2] + [1] * 8
    for i, e in enumerate(epochs):
        feed(view, f"t{i}", e, end=1.0 + i)
    view.paused = {f"t{i}" for i, e in enumerate(epochs) if e < 8}
    assert view.epochs_left() == 0.0
    # A rung that holds more than its share (an asynchronous promotion ahead of the rest) keeps its count: 5 trials
    # at rung 4 send ceil(5 / 2) = 3 on to the end, where 2 are: one trial's 4 epochs are left.
    assert rung_epochs_left([1, 2, 4, 8], 2, [8, 8, 4, 4, 4, 2, 2, 2] + [1] * 8, 0) == pytest.approx(4.0)


def test_the_pace_is_the_recent_one():
    """No early stopping, 4 trials of 8 epochs: 10 epochs of 1 s, then 6 of 4 s (larger models): over the last half
    of the 34 s, 5 epochs ended, 5 / 17 a second, not the run's 16 / 34."""
    view = progress(4, scheduler=("fifo", {"max_epochs": 8}))
    ends = [1.0 + i for i in range(10)] + [10.0 + 4 * (i + 1) for i in range(6)]
    for i, end in enumerate(ends):
        feed(view, f"t{i % 4}", 1 + i // 4, end=end)
    assert view.epochs_left() == pytest.approx(4 * 8 - 16)
    expected = 16 / (5 / 17) + END_S
    assert view.time_left(now=34.0) == pytest.approx((expected, expected))


def test_an_early_estimate_is_a_range_and_ended_trials_count_nothing():
    view = progress(16)
    for i in range(4):
        feed(view, f"t{i}", 1, end=1.0 + i)
    view.paused = {"t0", "t1", "t2", "t3"}
    assert view.time_left(now=4.0) == pytest.approx((0.75 * 39, 1.5 * 39))  # 40 - 4 epochs, one a second, and END_S
    # An infeasible trial ran nothing and will run nothing: 15 trials reach rung 1, 8 rung 2, 4 rung 4, 2 the end.
    view.last["bad"] = {C.INFEASIBLE: "refused", "training_iteration": 1}
    view.on_trial_complete(0, [], Trial("bad"))
    view.last["t0"] = {"training_iteration": 1}
    view.on_trial_complete(0, [], Trial("t0"))
    assert view.epochs_left() == pytest.approx(15 + 8 + 4 * 2 + 2 * 4 - 4)
