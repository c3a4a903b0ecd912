"""The progress view's time left: from the epochs the scheduler is still expected to run (given the rungs each
trial has passed) at the recent pace, not from finished trials (which a scheduler that pauses trials at rungs ends
late). Driven with made-up results, no Ray."""

from __future__ import annotations

import io
import math

import pytest

from orchestrator.search.schedulers import SCHEDULERS
from orchestrator.search.schedulers.work_left import (
    arrivals,
    makespan,
    new_trial_seconds,
    rung_epochs_left,
    segment_seconds,
)
from orchestrator.watch.console import clock
from orchestrator.watch.eta import END_S, SMOOTH_S
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


class FakeTrial:
    PAUSED, PENDING = "PAUSED", "PENDING"

    def __init__(self, trial_id: str):
        self.trial_id, self.status = trial_id, "RUNNING"


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
    all; 10 have run their first epoch (one a second, one slot), so 30 are left, whichever of them are paused (the
    one running has just reported: it is not into its next epoch yet). Then the export and the summary (`END_S`)."""
    view = progress(16)
    assert view.time_left(now=0.0) is None, "nothing to go on before the first epoch"
    for i in range(10):
        feed(view, f"t{i}", 1, end=1.0 + i)
    view.paused = {f"t{i}" for i in range(9)}
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
    assert view.time_left(now=4.0) == pytest.approx((0.75 * (36 + END_S), 1.5 * (36 + END_S)))  # 40 - 4 epochs, 1 s each
    # An infeasible trial ran nothing and will run nothing: 15 trials reach rung 1, 8 rung 2, 4 rung 4, 2 the end.
    view.last["bad"] = {C.INFEASIBLE: "refused", "training_iteration": 1}
    view.on_trial_complete(0, [], Trial("bad"))
    view.last["t0"] = {"training_iteration": 1}
    view.on_trial_complete(0, [], Trial("t0"))
    assert view.epochs_left() == pytest.approx(15 + 8 + 4 * 2 + 2 * 4 - 4)


def test_the_last_promotions_run_on_fewer_workers_than_there_are():
    """Work left scheduled over the workers, not divided by them: 16 trials at rungs 1, 2, 4 of 8 (x2), epochs of
    1 s, nothing run yet: 40 epochs. One worker takes 40 s and two 20 s (promotions first, the rungs keep both
    busy), but 16 workers take 8 s, not 40 / 16: a trial passes each rung before it runs to the next, and the last
    ones run alone."""
    marks, per_epoch = [1, 2, 4, 8], [1.0] * 4
    assert makespan(marks, 2, [], 16, 1, per_epoch) == pytest.approx(40.0)
    assert makespan(marks, 2, [], 16, 2, per_epoch) == pytest.approx(20.0)
    assert makespan(marks, 2, [], 16, 16, per_epoch) == pytest.approx(1 + 1 + 2 + 4)
    # The trials under way run on at their own seconds per epoch: one at epoch 5 of 8 (3 left at 2 s) while
    # everything else has ended: 6 s.
    reached = [8, 5, 4, 4, 2, 2, 2, 2] + [1] * 8
    own = [None, 2.0] + [None] * 14
    assert makespan(marks, 2, reached, 0, 2, per_epoch, own) == pytest.approx(6.0)


def test_a_trial_under_way_is_partway_through_its_epoch():
    """A running trial is as far into its next epoch as the time since its last report, and a trial started that
    has reported nothing is as far into its first: only the rest is left. Without early stopping, 2 trials of 4
    epochs of 4 s on 2 workers: t0 reported epoch 2 at 10 s and runs on; t1 started at 8 s. At 11 s: t0 has 2
    epochs less 1 s (7 s), t1 4 epochs less 3 s (13 s): 13 s, where counting both from the start of an epoch
    would say 16 s."""
    view = Progress("val_rmse", "min", 2, 4, out=io.StringIO(), scheduler=("fifo", {"max_epochs": 4}), workers=2)
    view.setup()
    feed(view, "t0", 1, end=6.0, seconds=4.0)
    feed(view, "t0", 2, end=10.0, seconds=4.0)
    view.on_trial_start(0, [], Trial("t1"))
    view.starting["t1"] = 8.0  # the wall time it started
    assert view.work_left(0.0, now=11.0) == pytest.approx(13.0)
    # Under successive halving the same: rungs 1, 2, 4 of 4 at x2, 2 workers; t0 at epoch 3 and 1 s into its last
    # (3 s left), t1 3 s into its first and expected to run all 4 (1 s, then 12 s): 13 s, not 16.
    marks = [1, 2, 4]
    assert makespan(marks, 2, [3], 1, 2, [4.0] * 3, [4.0]) == pytest.approx(16.0)
    assert makespan(marks, 2, [3], 1, 2, [4.0] * 3, [4.0], into=[1.0], started=[3.0]) == pytest.approx(13.0)
    # A trial at a rung that runs (promoted, resumed) is under way to the next, as far into its epoch as the time
    # since it resumed: 2 epochs less 1 s; paused there, its promotion is still to come, 2 whole epochs.
    assert makespan(marks, 2, [2], 0, 1, [4.0] * 3, [4.0], into=[1.0], moving=[True]) == pytest.approx(7.0)
    assert makespan(marks, 2, [2], 0, 1, [4.0] * 3, [4.0]) == pytest.approx(8.0)
    view = Progress("val_rmse", "min", 1, 4, out=io.StringIO(), scheduler=("asha", {**ASHA, "max_epochs": 4}))
    view.setup()
    feed(view, "t0", 2, end=10.0, seconds=4.0)
    trial = FakeTrial("t0")
    trial.status = "PAUSED"
    view.on_step_end(0, [trial])
    trial.status = "RUNNING"
    view.on_step_end(0, [trial])  # resumed: its epoch runs from this step
    assert "t0" in view.resumed and not view.paused
    view.resumed["t0"] = 30.0  # the wall time of that step
    assert view.work_left(0.0, now=31.0) == pytest.approx(7.0)
    # Just after it reached a rung, a trial Tune says is RUNNING may be one it is pausing (it saves the checkpoint
    # first): for a second it counts as paused there, then as running on.
    feed(view, "t1", 2, end=40.0, seconds=4.0)
    assert "t1" not in view._running(now=40.5) and "t1" in view._running(now=41.5)


def test_a_trial_promoted_early_stays_promoted():
    """The promoting ASHA promotes the top ceil(n / rf) of a rung at the end, besides those it promoted while the
    rung held few trials: rungs 1, 2 of 2 at x2, 8 trials at rung 1, the first promoted when it was alone there
    and now the worst of them; 1 more trial to come. 5 go on (ceil(9 / 2) and the one promoted early), not 5
    less the one; a share of 1/2 alone would say 4 + 1."""
    view = progress(9, scheduler=("asha", {**ASHA, "max_epochs": 2}))
    feed(view, "early", 1, end=1.0, val_rmse=9.0)
    feed(view, "early", 2, end=2.0, val_rmse=8.0)
    for i in range(7):
        feed(view, f"t{i}", 1, end=3.0 + i, val_rmse=1.0 + i)
    view.paused = {f"t{i}" for i in range(7)}
    assert view._excess([1, 2], 2) == [1]
    view.paused.discard("t6")  # running on from the rung: promoted as well, and the worst there
    assert view._excess([1, 2], 2) == [2]
    assert arrivals([1, 2], 2, [2] + [1] * 7, 1, [1]) == [9, 6]
    assert arrivals([1, 2], 2, [2] + [1] * 7, 1) == [9, 5]


def test_a_new_trial_costs_what_the_families_the_searcher_draws_now_cost():
    """A searcher that has learned draws mostly one family: 30 trials, the first 20 of 1-s MLPs, the last 10 of 3-s
    GRUs. A new trial costs the recent 10 trials' families, each at its own mean: 3 s, not the 2.3 s of the recent
    half's epochs (5 MLPs, 10 GRUs). And the view records each trial's family from its config."""
    runs, families = [[1.0]] * 20 + [[3.0]] * 10, ["mlp"] * 20 + ["gru"] * 10
    assert new_trial_seconds(runs, families, 1) == pytest.approx(3.0)
    assert segment_seconds([1], runs) == pytest.approx([(5 * 1.0 + 10 * 3.0) / 15])
    assert new_trial_seconds(runs[:25], families[:25], 1) == pytest.approx((5 * 1.0 + 5 * 3.0) / 10)
    view = progress(4)
    feed(view, "t0", 1, end=1.0)
    assert view.family["t0"] == "mlp"


def test_the_status_line_smooths_the_end_it_points_to():
    """One step's noise does not swing the line: the end the estimates point to moves towards each new one by
    1 - exp(-dt / SMOOTH_S). The estimate drops from 100 s to 50 s a second later: the line says 90 s; half a
    minute on, the new estimate."""
    view = progress(4, scheduler=("fifo", {"max_epochs": 8}))
    feed(view, "t0", 1, end=0.0)
    estimates = iter([(100.0, 100.0), (50.0, 50.0), (21.0, 21.0)])
    view.time_left = lambda now=None: next(estimates)  # the estimator is tested above; this is the line's smoothing
    assert view.left_said(now=0.0) == "~1:40 left"
    end = 100.0 + (1 - math.exp(-1.0 / SMOOTH_S)) * (51.0 - 100.0)
    assert view.left_said(now=1.0) == f"~{clock(end - 1.0)} left" == "~1:30 left"
    assert view.left_said(now=31.0) == "~0:21 left"


def test_a_rung_sends_on_the_share_its_recent_arrivals_went_on():
    """40 trials at rung 1 (of 1, 3, 9 at x3), oldest first: of the first 20 none went on, of the last 20 half
    (a searcher that has learned draws more good trials); 60 more to come. Past rung 1 go the 10 already past it
    and (10 + 10/3) / (20 + 10) of the 60 to come: 37, not the third of 100 a fixed share would say."""
    reached = [1] * 20 + [3, 1] * 10
    assert arrivals([1, 3, 9], 3, reached, 60)[:2] == [100, 10 + math.ceil(60 * (10 + 10 / 3) / 30 - 1e-9)]
    # Once every trial has arrived, a rung sends on at least ceil(n / rf) (the promoting ASHA's end); a trial at
    # the rung that runs (promoted, its next epoch not reported yet) has gone on.
    assert arrivals([1, 3, 9], 3, [1] * 10, 0) == [10, 4, 2]
    assert arrivals([1, 3, 9], 3, [1] * 10, 0, moving=[True] * 5 + [False] * 5) == [10, 5, 2]


def test_an_epoch_costs_its_own_seconds_and_what_the_workers_spend_beside_it():
    """Each rung's epochs at the seconds of the epochs run there (promoted trials are of other sizes than the
    ones the first rung stops), and, per epoch, the worker-seconds the running trials held beside their epochs'
    own seconds: here a driver that hands out results slower than 2 workers run epochs of 0.1 s."""
    assert segment_seconds([1, 2], [[4.0], [4.0, 1.0], [1.0, 1.0]]) == pytest.approx([3.0, 1.0])
    view = Progress("val_rmse", "min", 15, 2, out=io.StringIO(), scheduler=("fifo", {"max_epochs": 2}), workers=2)
    view.setup()
    for i in range(20):  # 10 trials of 2 epochs: one epoch of 0.1 s every half second, on 2 workers
        feed(view, f"t{i // 2}", 1 + i % 2, end=0.5 * (i + 1), seconds=0.1)
    # Over the last half (5.4 s to 10.4 s), 10 epochs of 0.1 s took 2 x 5 worker-seconds: 0.9 s beside each.
    left = view.time_left(now=10.4)
    assert left is not None and left[0] == left[1]
    # 5 trials of 2 epochs left, each epoch 0.1 + 0.9 s, over 2 workers: 3 rounds of 2 s.
    assert left[0] == pytest.approx(3 * 2 * 1.0 + END_S)


def test_the_workers_idle_at_the_end_do_not_count_as_work():
    """Worker-seconds come from the steps: every worker while new trials are to come (one waiting for the driver
    to start the next trial spends that beside the epochs), then the trials running or about to run. A search
    whose last trial runs alone on 2 workers spends nothing beside its epochs, where dividing by both workers
    would say a second beside each."""
    view = Progress("val_rmse", "min", 2, 12, out=io.StringIO(), scheduler=("fifo", {"max_epochs": 12}), workers=2)
    view.setup()
    first, last = FakeTrial("t0"), FakeTrial("t1")
    last.status = "TERMINATED"
    view.hold([first], 0.0)
    view.hold([first], 1.0)  # the second trial is still to come: both workers count
    view.hold([first, last], 1.2)  # too soon after the last step: not recorded
    for i in range(2, 11):
        view.hold([first, last], float(i))  # both have come, one runs
    assert view.busy[:2] == [(0.0, 0.0), (1.0, 2.0)] and view.busy[-1] == (10.0, 11.0)
    assert view._taken(5.0, 10.0) == pytest.approx(5.0)
    view.last["t1"] = {"training_iteration": 3}
    view.on_trial_complete(0, [], Trial("t1"))
    for i in range(10):
        feed(view, "t0", i + 1, end=float(i + 1))
    # Its own 2 epochs left (at 1 s each, as it ran them), nothing beside: not 2 x 5 worker-seconds for 5 epochs.
    assert view.time_left(now=10.0) == pytest.approx((2 * 1.0 + END_S,) * 2)


class Controller:
    def __init__(self, trials):
        self.trials, self.search_alg = trials, type("Finished", (), {"is_finished": lambda self: True})()

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        trial.status = "TERMINATED"


def test_at_the_end_of_a_search_every_free_worker_takes_a_promotion():
    """Promoting ASHA, rungs 1 and 2 of 4 (x2), 2 workers, trials a > b > c: a was promoted at rung 1 and paused at
    rung 2, b and c wait at rung 1. Once no new trial comes, both rungs promote ceil(n / 2): a from rung 2 and b from
    rung 1, each on its own worker at once (it used to be one, then the next once every worker was idle)."""
    from orchestrator.search.schedulers.asha import PromotingASHA

    asha = PromotingASHA("training_iteration", 4, 1, 2)
    asha.set_search_properties("val_rmse", "min")
    asha.capacity = 2
    a, b, c = (FakeTrial(name) for name in "abc")
    controller = Controller([a, b, c])
    for trial in (a, b, c):
        asha.on_trial_add(controller, trial)

    def report(trial, epoch, value):
        decision = asha.on_trial_result(controller, trial, {"training_iteration": epoch, "val_rmse": value})
        trial.status = "PAUSED" if decision == "PAUSE" else "RUNNING"

    report(a, 1, 1.0)
    report(b, 1, 2.0)  # rung 1 holds 2: a (its best) is promoted
    report(a, 2, 1.0)  # alone at rung 2: paused
    report(c, 1, 3.0)
    assert {t.status for t in (a, b, c)} == {"PAUSED"}
    first = asha.choose_trial_to_run(controller)
    first.status = "RUNNING"
    second = asha.choose_trial_to_run(controller)
    assert (first, second) == (a, b)
    second.status = "RUNNING"
    assert asha.choose_trial_to_run(controller) is None, "both workers are taken"


def test_the_time_left_benchmark_scores_estimates_after_the_first_third_against_the_summary():
    """`benchmarks/time_left.py`, which measured the figures in benchmarks/README.md: a run whose summary comes at
    60 s; estimates before 20 s are not scored, a single figure counts within 30% of the time left, a range when it
    holds it."""
    from benchmarks.time_left import score

    lines = [(5.0, "[0:05] 0/4 trials | ~9:00 left"), (21.0, "[0:21] ... | ~0:30 left"), (30.0, "[0:30] ... | ~0:20 left"),
             (40.0, "[0:40] ... | ~0:05-0:25 left"), (50.0, "[0:50] ... | ~0:20 left"), (55.0, "[0:55] ... | under 0:10 left"), (60.0, "Done in 1:00: 4 trials")]
    assert [(t, within) for t, _, _, _, within in score(lines)] == [(21.0, True), (30.0, False), (40.0, True), (50.0, False), (55.0, True)]


def test_the_last_seconds_read_under_ten_seconds_not_a_figure():
    import time

    out = io.StringIO()
    view = Progress("val_rmse", "min", 1, 12, out=out, scheduler=("fifo", {"max_epochs": 12}))
    view.setup()
    now = time.time()
    for i in range(10):  # 10 epochs of 1 s up to now: 2 left, and the export
        feed(view, "t0", i + 1, end=now - 9 + i)
    view._status()
    assert out.getvalue().rstrip().endswith("| under 0:10 left")


def test_the_time_left_benchmark_replays_a_finished_run_through_the_estimator(tmp_path):
    """`--replay`: a run directory's results, fed in the order their epochs ended. 8 trials of 2 epochs of 3 s, one
    at a time, no early stopping: at 36 s, 2 trials (12 s) and the export (END_S) are left, and the run's last epoch
    ended at 48 s. The estimates are read as the status line says them: the last ones "under 0:10 left"."""
    import json

    import yaml

    from benchmarks.time_left import replay

    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump({
        "metric": "val_rmse", "mode": "min", "num_samples": 8, "max_concurrent": 1,
        "scheduler": {"kind": "fifo", "max_epochs": 2}}))
    for i in range(8):
        trial = tmp_path / f"mlp_t{i}"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps(TrialConfig.to_tune("mlp", {}, {})))
        rows = [{"training_iteration": e, "timestamp": 1000.0 + 6 * i + 3 * e, "time_this_iter_s": 3.0, "val_rmse": 1.0} for e in (1, 2)]
        (trial / "result.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    rows = replay(tmp_path, every=1.0)
    assert rows[0][0] >= (48 + END_S) / 3 and all(row[4] for row in rows)
    said = float(int(2 * 2 * 3.0 + END_S))  # in whole seconds, as the status line says it
    assert (36.0, said, said, 48 + END_S - 36, True) in rows
    assert rows[-1][1:3] == (0.0, 10.0)
