"""The searchers and schedulers beyond the defaults, each in a real tiny run, and warm starts: points to
evaluate run first and teach the searcher, and `orchestrator extend` grows a finished search with a
searcher that has learned every earlier trial. (Refused pairings: tests/test_bad_input.py.)"""

from __future__ import annotations

import io
import json
import math
import pickle
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.reading import results as R
from search_spaces import BUNDLED

# Forecast epochs take a few milliseconds: these runs cost Tune's own overhead, not training.
SPACE = {
    "families": {"mlp": {"hidden_size": {"choice": [16, 32]}}, "gru": {"hidden_size": {"choice": [8, 16]}}},
    "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}, "batch_size": {"choice": [32, 64]}},
}
# How many evaluated trials each model-based searcher holds.
LEARNED = {
    "hyperopt": lambda s: len([t for t in s._hpopt_trials.trials if t["result"].get("status") == "ok"]),
    "optuna": lambda s: len([t for t in s._ot_study.trials if t.value is not None]),
    "bohb": lambda s: sum(len(losses) for losses in s.bohber.losses.values()),
}
POINT = {"family": "mlp", "hidden_size": 32, "lr": 0.005, "batch_size": 32}


def experiment(tmp: Path, **changes) -> Path:
    config = {"name": "s", "task": {"kind": "forecast"}, "search_space": SPACE, "num_samples": 4, "max_concurrent": 2,
              "scheduler": {"kind": "asha", "max_epochs": 3}, "storage": str(tmp / "runs"), **changes}
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def saved_layers(run_dir: Path) -> list[dict]:
    """The saved search algorithm's state, wrapper by wrapper (the promoting ASHA's limiter, NoRepeats, WarmStart),
    down to the library's own searcher."""
    state = pickle.loads(sorted(run_dir.glob("searcher-state-*.pkl"))[-1].read_bytes())
    layers = [state]
    while "inner" in layers[-1]:
        layers.append(pickle.loads(layers[-1]["inner"]))
    return layers


def started_configs(run_dir: Path) -> list[dict]:
    return [t.hparams() for t in R.load_trials(run_dir)]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("searcher,scheduler", [("bohb", "hyperband"), ("random", "median")])
def test_searcher_and_scheduler_in_a_real_run(searcher, scheduler, tmp_path, ray_session, capsys):
    path = experiment(tmp_path, searcher=searcher, scheduler={"kind": scheduler, "max_epochs": 3})
    assert main(["run", str(path)]) == 0
    trials = R.load_trials(tmp_path / "runs" / "s")
    assert len(trials) == 4 and all(t.rows for t in trials)
    out = capsys.readouterr().out
    assert f"searcher {searcher} | scheduler {scheduler}" in out
    # max_epochs 3 at x3: HyperBand's largest bracket holds 3 trials, more than the 2 at once here
    assert ("note: hyperband acts on 3 trials running together, but 2 run at once" in out) == (scheduler == "hyperband"), out


@pytest.mark.timeout(240)
def test_promoting_asha_pauses_trials_at_rungs_and_promotes_the_best_of_each(tmp_path, ray_session, capsys):
    """`promote: true`: ASHA's paper variant. At one trial at a time the first trial pauses at its first rung
    (Ray's stopping ASHA would run it to the end unchecked), later trials resume from their checkpoints, each
    rung promotes only trials then among its top ceil(n / reduction_factor), the best trial of every rung is
    among them, and the searcher learned every trial once, where it first stopped running."""
    import math

    scheduler = {"kind": "asha", "max_epochs": 4, "grace_period": 1, "reduction_factor": 2, "promote": True}
    # No warm start: the searcher's state is then HyperOpt's own (the warm start with promotions: further below).
    path = experiment(tmp_path, searcher="hyperopt", num_samples=8, max_concurrent=1, scheduler=scheduler, warm_start="none")
    run_dir = tmp_path / "runs" / "s"
    assert main(["run", str(path)]) == 0
    assert "scheduler asha (max 4 epochs, grace 1, x2, promoting)" in capsys.readouterr().out
    trials = R.load_trials(run_dir)
    assert len(trials) == 8 and all(t.status(4) != R.UNFINISHED for t in trials)
    epochs = {t.trial_id: len(t.rows) for t in trials}
    assert set(epochs.values()) <= {1, 2, 4} and max(epochs.values()) == 4, epochs
    order = [tid for _, tid in sorted((r["timestamp"], t.trial_id) for t in trials for r in t.rows)]  # whose epoch, in time
    assert order[0] != order[1], f"the first trial must pause at its first rung: {order}"
    resumed = [tid for tid in epochs if len(set(order[order.index(tid):len(order) - order[::-1].index(tid)])) > 1]
    assert resumed, f"no trial resumed after another one ran: {order}"
    for milestone in (1, 2):
        reached = {t.trial_id: t.rows[milestone - 1]["val_rmse"] for t in trials if len(t.rows) >= milestone}
        assert epochs[min(reached, key=reached.get)] > milestone, f"the best trial at epoch {milestone} was not promoted"
        for trial in (t for t in trials if len(t.rows) > milestone):  # promoted while in the top ceil(n / 2) of the rung
            resumed_at = trial.rows[milestone]["timestamp"]
            so_far = sorted(t.rows[milestone - 1]["val_rmse"] for t in trials if len(t.rows) >= milestone
                            and t.rows[milestone - 1]["timestamp"] < resumed_at)
            assert so_far.index(trial.rows[milestone - 1]["val_rmse"]) < math.ceil(len(so_far) / 2), (milestone, trial.trial_id)
    layers = saved_layers(run_dir)
    assert layers[0]["told"] == set(epochs)
    hyperopt = layers[-1]
    losses = sorted(t["result"]["loss"] for t in hyperopt["_hpopt_trials"].trials if t["result"].get("status") == "ok")
    timeline = sorted((r["timestamp"], t.trial_id, r["val_rmse"]) for t in trials for r in t.rows)
    first_stop = {}  # each trial's value where it first stopped running: paused at a rung, or ended
    for (_, tid, value), after in zip(timeline, timeline[1:] + [(None, None, None)]):
        if after[1] != tid:
            first_stop.setdefault(tid, value)
    assert losses == sorted(first_stop.values()), "the searcher learns each trial once, where it first stopped running"
    stopped = {t.trial_id for t in trials if t.status(4) == R.STOPPED_EARLY}
    assert stopped == {tid for tid, n in epochs.items() if n < 4}, "trials left paused at the end are stopped there"

    # Extended: the new trials rank against the earlier ones in the rungs, and the earlier ones keep their status.
    assert main(["extend", str(run_dir), "--trials", "2"]) == 0
    callbacks = pickle.loads(sorted(run_dir.glob("callback-states-*.pkl"))[-1].read_bytes())
    saved = next(v["scheduler"] for v in callbacks.values() if isinstance(v, dict) and "scheduler" in v)

    class TrialsAsIds(pickle.Unpickler):  # the saved state names each Tune Trial by its id
        def persistent_load(self, pid):
            return pid[1]

    rungs = TrialsAsIds(io.BytesIO(saved["state"])).load()["_rungs"]
    assert sum(tid.startswith("earlier-") for tid in rungs[0]) == 8 and len(rungs[0]) == 10
    after = R.load_trials(run_dir)
    assert len(after) == 10 and {t.trial_id for t in after if t.status(4) == R.STOPPED_EARLY} >= stopped


def test_schedulers_that_act_on_trials_together_say_when_too_few_run_at_once():
    """HyperBand's first bracket never halves, PBT ranks a running population: with fewer trials at once they stop
    nothing (the quality study measured HyperBand and PBT equal to FIFO there)."""
    from ray.tune.schedulers import HyperBandScheduler

    from orchestrator.search.schedulers import SCHEDULERS

    for max_t, eta in ((8, 3), (10, 3), (27, 3), (8, 2), (3, 3)):
        ray_hb = HyperBandScheduler(max_t=max_t, reduction_factor=eta)
        # one trial beyond Ray's first bracket, which holds n0(0) = s_max + 1 trials and never halves
        assert SCHEDULERS["hyperband"].together({"max_epochs": max_t, "reduction_factor": eta}) == ray_hb._get_n0(0) + 1
    hb = {"max_epochs": 8, "reduction_factor": 3}
    assert "hyperband acts on 4 trials running together, but 2 run at once" in SCHEDULERS["hyperband"].concurrency_note(hb, 2)
    assert SCHEDULERS["hyperband"].concurrency_note(hb, 4) is None
    pbt = SCHEDULERS["pbt"].options(kind="pbt").model_dump()
    assert "pbt acts on 4 trials" in SCHEDULERS["pbt"].concurrency_note(pbt, 3) and SCHEDULERS["pbt"].concurrency_note(pbt, 4) is None
    assert SCHEDULERS["asha"].concurrency_note(SCHEDULERS["asha"].options(kind="asha").model_dump(), 1) is None


class FakeTrial:
    """What Ray's HyperBand reads of a trial: trials and results are made up (as Syne Tune tests its schedulers)."""

    def __init__(self, n: int):
        from ray.tune.experiment import Trial

        self.trial_id, self.status, self.is_saving, self.last_result = f"t{n}", Trial.PENDING, False, {}


class FakeController:
    """Tune's controller as a scheduler calls it back: `stop_trial` (of a paused trial, or the one reporting)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def stop_trial(self, trial):
        from ray.tune.experiment import Trial

        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        elif trial.status == Trial.RUNNING:
            self.scheduler.on_trial_complete(self, trial, trial.last_result)
        trial.status = Trial.TERMINATED


def epochs_under_hyperband(options: dict, losses: list[float], epoch_s: list[float], concurrency: int) -> list[int]:
    """The epochs each trial trains when our `hyperband` record's scheduler decides, driven as Tune drives it, with
    no training: trial i reports losses[i] every epoch, an epoch of it takes epoch_s[i] seconds, at most
    `concurrency` trials are live (a paused one still counts, as in Tune's ConcurrencyLimiter) and run at once,
    and a trial at max_epochs is stopped (Tune's stopper) before the scheduler sees its result."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from orchestrator.search.schedulers import SCHEDULERS
    from orchestrator.search.schedulers.base import EPOCHS

    record = SCHEDULERS["hyperband"]
    max_epochs = record.options(kind="hyperband", **options).max_epochs
    scheduler = record.build(record.options(kind="hyperband", **options))
    scheduler.set_search_properties("loss", "min")
    controller = FakeController(scheduler)
    trials: list[FakeTrial] = []
    epochs: list[int] = []
    due: list[float] = []  # when each running trial's current epoch ends
    now = 0.0
    while True:
        while sum(t.status != Trial.TERMINATED for t in trials) < concurrency and len(trials) < len(losses):
            trials.append(FakeTrial(len(trials)))
            epochs.append(0)
            due.append(0.0)
            scheduler.on_trial_add(controller, trials[-1])
        while sum(t.status == Trial.RUNNING for t in trials) < concurrency and (chosen := scheduler.choose_trial_to_run(controller)):
            chosen.status = Trial.RUNNING
            due[trials.index(chosen)] = now + epoch_s[trials.index(chosen)]
        running = [i for i, t in enumerate(trials) if t.status == Trial.RUNNING]
        if not running:
            break
        i = min(running, key=lambda i: (due[i], i))
        now, epochs[i] = due[i], epochs[i] + 1
        due[i] = now + epoch_s[i]
        trial = trials[i]
        trial.last_result = result = {EPOCHS: epochs[i], "loss": losses[i]}
        if epochs[i] == max_epochs:
            controller.stop_trial(trial)
            continue
        decision = scheduler.on_trial_result(controller, trial, result)
        if decision == TrialScheduler.PAUSE:
            trial.status = Trial.PAUSED
        elif decision == TrialScheduler.STOP:
            controller.stop_trial(trial)
    assert len(trials) == len(losses) and all(t.status == Trial.TERMINATED for t in trials), "the search stalled"
    return epochs


HB_TRIALS = 24
HB_LOSSES = [(i * 7 % 11) / 10 + i / 1000 for i in range(HB_TRIALS)]  # all different; the best neither first nor last
HB_PACES = {  # seconds per epoch of each trial: when trials finish decides which bracket the next one joins
    "even": [1.0] * HB_TRIALS,
    "mixed": [1 + (i * 5 % 7) / 3 for i in range(HB_TRIALS)],
    "every third slow": [3.0 if i % 3 == 0 else 1.0 for i in range(HB_TRIALS)],
}
# Ray's first bracket holds round(log(max_t)/log(eta)) + 1 trials, never halves, and takes every new trial while it
# has room: HyperBand stops trials from one more than that at once, which is `together`.


@pytest.mark.parametrize("max_epochs,eta", [(3, 3), (4, 2), (5, 2), (8, 3), (8, 2), (27, 3), (10, 3), (9, 3)])
def test_hyperband_stops_trials_exactly_when_it_gives_no_concurrency_note(max_epochs, eta):
    """The header's note ("stops no trial and runs like fifo") against HyperBand's own decisions: at each number of
    trials at once, it stops a trial early (in one pace or another) exactly when no note is given, and never the best."""
    from orchestrator.search.schedulers import SCHEDULERS

    options = {"max_epochs": max_epochs, "reduction_factor": eta}
    record = SCHEDULERS["hyperband"]
    best = HB_LOSSES.index(min(HB_LOSSES))
    for concurrency in range(1, record.together(options) + 3):
        runs = {pace: epochs_under_hyperband(options, HB_LOSSES, epoch_s, concurrency) for pace, epoch_s in HB_PACES.items()}
        stopped = {pace: [i for i, n in enumerate(epochs) if n < max_epochs] for pace, epochs in runs.items()}
        note = record.concurrency_note(options, concurrency)
        assert any(stopped.values()) == (note is None), f"{concurrency} at once: note {note!r}, stopped early {stopped}"
        assert all(epochs[best] == max_epochs for epochs in runs.values()), f"{concurrency} at once: the best trial was stopped"


@pytest.mark.timeout(180)
def test_pbt_mutates_training_hyperparameters_and_shows_them(tmp_path, ray_session):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    space = {"families": {"mlp": {"hidden_size": 32}}, "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}}
    path = experiment(tmp_path, searcher="random", search_space=space, num_samples=4,
                      scheduler={"kind": "pbt", "max_epochs": 6, "perturbation_interval": 1, "quantile_fraction": 0.5})
    assert main(["run", str(path)]) == 0
    mutated = []
    for trial in R.load_trials(tmp_path / "runs" / "s"):
        lrs = [r["config"]["lr"] for r in trial.rows]
        if len(set(lrs)) > 1:
            mutated.append(trial)
            # result.json: the optimizer trained with each epoch's configured rate (the checkpoint's own was replaced)
            assert all(abs(r["lr"] - r["config"]["lr"]) <= 1e-12 * r["lr"] for r in trial.rows), [(r["lr"], r["config"]["lr"]) for r in trial.rows]
    assert mutated, "PBT mutated no trial's learning rate"
    assert all(trial.path.name.startswith("mlp_") for trial in R.load_trials(tmp_path / "runs" / "s")), "trial directories: <family>_<id>"
    events = EventAccumulator(str(mutated[0].path)).Reload()
    assert "mutated/lr" in events.Tags()["scalars"]


@pytest.mark.timeout(240)
def test_points_run_first_and_extend_grows_the_search_with_the_searchers_history(tmp_path, ray_session, capsys):
    # "first" is then exact; Ray's stopping ASHA here (the promoting one's extension: the test above)
    path = experiment(tmp_path, searcher="optuna", points_to_evaluate=[POINT], max_concurrent=1,
                      scheduler={"kind": "asha", "max_epochs": 3, "promote": False})
    run_dir = tmp_path / "runs" / "s"
    assert main(["run", str(path)]) == 0
    first = started_configs(run_dir)[0]
    assert {k: first[k] for k in ("family", "lr", "batch_size")} == {"family": "mlp", "lr": 0.005, "batch_size": 32}
    assert first["model/hidden_size"] == 32

    capsys.readouterr()
    assert main(["extend", str(run_dir), "--trials", "3"]) == 0
    out = capsys.readouterr().out
    assert "has learned the 4 earlier one(s)" in out
    trials = R.load_trials(run_dir)
    assert len(trials) == 7 and all(t.status(3) != R.UNFINISHED for t in trials)
    assert R.read_run(run_dir).planned_trials() == 7
    # The saved searcher of the extension: taught the 4 earlier trials, and its Optuna study holds all 7.
    layers = saved_layers(run_dir)
    assert next(layer["learned"] for layer in layers if "learned" in layer) == 4
    study = layers[-1]["_ot_study"]
    assert len([t for t in study.trials if t.value is not None]) == 7
    # The extension's ASHA holds the earlier trials in its rungs too (saved with the experiment's callbacks).
    callbacks = pickle.loads(sorted(run_dir.glob("callback-states-*.pkl"))[-1].read_bytes())
    saved = next(v["scheduler"] for v in callbacks.values() if isinstance(v, dict) and "scheduler" in v)
    rungs = pickle.loads(saved["state"])["_brackets"][0]._rungs
    assert sum(trial_id.startswith("earlier-") for _, recorded in rungs for trial_id in recorded) >= 4
    assert json.loads((run_dir / "best" / "metrics.json").read_text())["trial_id"] in {t.trial_id for t in trials}
    assert len(list((run_dir / "_experiment").glob("events.out.tfevents.*"))) >= 1


@pytest.mark.timeout(120)
def test_extend_refuses_what_it_cannot_do(tmp_path, capsys):
    assert main(["extend", str(tmp_path / "nowhere"), "--trials", "2"]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_space_translates_for_bohb_and_teaches_every_searcher(name):
    """ConfigSpace draws come back as configs inside the space (each passes as a point to evaluate), with the
    same hyperparameters active; and each model-based searcher learns configs it did not suggest, through its
    library's own space (HyperOpt's labels, Optuna's distributions, BOHB's ConfigSpace), then suggests again."""
    import numpy as np

    from orchestrator.search.searchers import SEARCHERS
    from orchestrator.search.warm_start import Evaluated
    from search_spaces import load_space
    from search_spaces.configspace_space import (
        configspace_values,
        from_configspace,
        to_configspace,
    )
    from search_spaces.points import parse_point
    from trainables.trial import TrialConfig

    space = load_space(name)
    for values in to_configspace(space, seed=0).sample_configuration(30):
        config = from_configspace(space, dict(values))
        trial = TrialConfig.from_tune(config)
        point = {"family": trial.family, **trial.model, **{k: config[k] for k in space.train}}
        assert parse_point(point, space, name) == config
        assert set(configspace_values(space, config)) == set(dict(values))
    rng = np.random.default_rng(0)
    for searcher in ("hyperopt", "optuna", "bohb"):
        record = SEARCHERS[searcher]
        built = record.build(space, "val_rmse", "min", 0, 10)
        for i in range(12):
            record.learn(built, space, Evaluated(space.sample(rng), float(i), 3))
        assert LEARNED[searcher](built) == 12, searcher
        suggestion = TrialConfig.from_tune(built.suggest("after"))
        assert suggestion.family in space.families


def test_the_readme_points_are_points_of_a_space():
    import re

    from search_spaces import parse_space
    from search_spaces.points import parse_points

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if b.startswith("points_to_evaluate:"))
    space = parse_space({"families": {"mlp": {"hidden_size": {"choice": [32, 64]}}, "gru": {"hidden_size": {"choice": [32, 64]}}},
                         "train": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}, "batch_size": {"choice": [32, 64]}}}, "test")
    configs = parse_points(yaml.safe_load(block)["points_to_evaluate"], space, "README")
    assert [c["arch"]["family"] for c in configs] == ["mlp", "gru"]


def test_the_quality_benchmark_takes_every_valid_pairing_and_refuses_the_others():
    from benchmarks.quality import pairings
    from benchmarks.study import BASELINE, scheduler_options

    every = pairings(["all"])
    assert {"optuna:asha", "bohb:hyperband", "random:pbt", "hyperopt:median"} <= set(every) and BASELINE not in every
    assert "bohb:asha" not in every and "hyperopt:pbt" not in every
    with pytest.raises(SystemExit, match="works with scheduler hyperband only"):
        pairings(["bohb:asha"])

    class Args:
        max_epochs, grace_period, reduction_factor, promote = 6, 2, 3, True

    assert scheduler_options("median", Args) == {"kind": "median", "max_epochs": 6, "grace_period": 2}
    assert scheduler_options("asha", Args) == {"kind": "asha", "max_epochs": 6, "grace_period": 2, "reduction_factor": 3, "promote": True}


@pytest.mark.timeout(240)
def test_the_quality_study_stops_searches_at_the_budget_and_varies_the_startup_fraction(tmp_path, ray_session, capsys):
    """A tiny study: each contender's search ends once it has spent the budget (12 trials x 2 epochs would be 24
    epochs; the budget is 2 x 2), and --startup-fraction is given to each search (`orchestrator.run(startup_fraction=...)`)."""
    from benchmarks import quality
    from orchestrator.search import searchers

    assert quality.main(["--task", "forecast", "--seeds", "1", "--random-trials", "2", "--max-epochs", "2", "--trials", "12",
                         "--startup-fraction", "0.25", "--defaults-first", "--tag", "t", "--out", str(tmp_path)]) == 0
    assert searchers.STARTUP_FRACTION == 1 / 3, "the study gives its fraction to each search; the product's default is untouched"
    record = json.loads((tmp_path / "quality-forecast-t.json").read_text())
    assert record["budget_epochs"] == 4 and record["args"]["startup_fraction"] == 0.25
    spent = record["curves"]["hyperopt:asha"][0]["epochs"][-1]
    assert 4 <= spent < 12, f"the search must end near its budget, not run all 12 trials: {spent} epochs"
    text = (tmp_path / "quality-forecast-t.md").read_text()
    assert "TPE's first 3 trials random" in text and "| hyperopt + asha |" in text
    assert "each pairing first runs every family's default configuration" in text and record["args"]["defaults_first"]

    # --baseline: random search's curves taken from that record (not run again), with promoting ASHA as the contender;
    # a record of another budget is refused.
    assert quality.main(["--task", "forecast", "--seeds", "1", "--random-trials", "2", "--max-epochs", "2", "--trials", "12",
                         "--promote", "--baseline", str(tmp_path / "quality-forecast-t.json"), "--tag", "b", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "quality-forecast-b.json").read_text())
    assert again["curves"]["random:fifo"] == record["curves"]["random:fifo"] and again["args"]["promote"] is True
    assert "ASHA promotes" in (tmp_path / "quality-forecast-b.md").read_text()
    with pytest.raises(SystemExit, match="its max_epochs is 2, this study's is 3"):
        quality.main(["--task", "forecast", "--seeds", "1", "--random-trials", "2", "--max-epochs", "3",
                      "--baseline", str(tmp_path / "quality-forecast-t.json"), "--out", str(tmp_path)])

    # --rescore: the record's table again, nothing run; with --target-pool, against random search's median best for
    # draws from a pool (here of three configurations: two draws hold the best, 10.0, with probability 5/9).
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps({"task": "forecast", "max_epochs": 2, "pool": [{"curve": [30.0, 10.0]}, {"curve": [25.0, 20.0]},
                                                                             {"curve": [40.0, None]}]}))
    capsys.readouterr()
    assert quality.main(["--rescore", str(tmp_path / "quality-forecast-b.json"), "--target-pool", str(pool)]) == 0
    table = capsys.readouterr().out
    assert "at the budget = 10.000 (estimated from the pool.json pool" in table and "| hyperopt + asha |" in table
    assert not (tmp_path / "quality-forecast.json").exists()
    with pytest.raises(SystemExit, match="--target-pool .*its task and epochs are 'forecast', 2; this study's are 'forecast', 3"):
        quality.main(["--task", "forecast", "--max-epochs", "3", "--target-pool", str(pool), "--out", str(tmp_path)])


@pytest.mark.parametrize("name", ["forecast", "charlm", "tabular"])
def test_the_quality_studys_family_defaults_are_points_of_the_bundled_space(name):
    """--defaults-first: one point per family, the code's defaults moved into the space where they lie outside."""
    from benchmarks.study import family_defaults
    from search_spaces import load_space
    from search_spaces.points import parse_points

    space = load_space(name)
    points = family_defaults(name)
    configs = parse_points(points, space, name)  # raises on a value outside the space
    assert [p["family"] for p in points] == list(space.families) and len(configs) == len(points)
    assert all(p["optimizer"] == "adam" and p["lr"] == 1e-3 for p in points)
    assert all(p["weight_decay"] == space.train["weight_decay"].low for p in points)  # 0.0 is outside a log range


def test_grid_searcher_repeats_the_grid_num_samples_times():
    """`num_samples` repeats the whole grid: the searcher proposes exactly the planned trials, then finishes."""
    from ray.tune.search import Searcher as TuneSearcher

    from orchestrator.search.searchers import SEARCHERS
    from search_spaces import load_space

    space = load_space("lstm_grid")
    record = SEARCHERS["grid"]
    planned = record.planned(space, 3, 0)
    searcher = record.build(space, "val_bpc", "min", 0, planned)
    configs = [searcher.suggest(str(i)) for i in range(planned)]
    assert planned == 3 * space.grid_size(0) and all(isinstance(c, dict) for c in configs)
    assert searcher.suggest("one-more") == TuneSearcher.FINISHED


def test_the_bound_replays_the_orchestrators_promoting_asha_and_its_oracle_bounds_every_search():
    """benchmarks/bound.py: searches replayed over given learning curves. With a known draw order the three searches
    spend exactly what their rules say; over random draws the oracle never spends more than either other search."""
    import random

    from benchmarks import bound

    bad, good = [9.0, 9.0, 9.0, 9.0], [5.0, 3.0, 1.0, 1.0]  # target 2: `good` reaches it at its third epoch

    def draws(*curves):
        order = iter(curves)
        return lambda: next(order)

    assert bound.random_search(draws(bad, bad, good), 2.0, 96) == 4 + 4 + 3
    assert bound.oracle(draws(bad, bad, good), 2.0, 96) == 1 + 1 + 3
    # PromotingASHA (grace 1, x2, rungs 1 and 2): the first `bad` pauses at rung 1; the second pauses too and
    # the first is promoted to epoch 2, where it pauses; `good` ranks first at both rungs and runs on: 3 + 3.
    assert bound.promoting_asha(draws(bad, bad, good), 2.0, 96, grace=1, factor=2, max_epochs=4) == 6
    assert bound.promoting_asha(draws(bad, bad, good), 2.0, 5, grace=1, factor=2, max_epochs=4) == float("inf")  # over budget

    # Random search's median best of k uniform draws, exact: one draw from ten is at best the 5th with probability
    # 1/2; of two draws from four, the best is the 1st with probability 7/16 and at least the 2nd with 3/4.
    assert bound.estimate_target([[float(v)] for v in range(10, 0, -1)], 1) == 5.0
    assert bound.estimate_target([[4.0], [3.0], [2.0, 9.0], [1.0]], 2) == 2.0

    pool = [bad, good, [8.0, 6.0, 4.0, 1.5], [7.0, 7.0, 7.0, 7.0], [6.0, 9.0, 2.0, 2.0]]
    for n in range(200):
        picks = [random.Random(n).choice(pool) for _ in range(200)]
        lowest = bound.oracle(iter(picks).__next__, 2.0, 40)
        assert lowest <= bound.random_search(iter(picks).__next__, 2.0, 40)
        assert lowest <= bound.promoting_asha(iter(picks).__next__, 2.0, 40, grace=1, factor=2, max_epochs=4)


@pytest.mark.timeout(180)
def test_the_bound_trains_a_pool_through_the_orchestrator_and_replays_a_saved_one(tmp_path, ray_session):
    from benchmarks import bound

    assert bound.main(["--task", "forecast", "--pool", "3", "--max-epochs", "2", "--random-trials", "2", "--draws", "20",
                       "--asha", "1:2", "--asha", "1:3", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "pool-forecast.json").read_text())
    assert len(saved["pool"]) == 3 and all(len(p["curve"]) == 2 and "lr" in p["config"] for p in saved["pool"])
    record = json.loads((tmp_path / "bound-forecast.json").read_text())
    assert record["target_source"] == "estimated from the pool" and record["pool_size"] == 3
    assert set(record["searches"]) == {"random search (each configuration to the end)", "oracle scheduler (lower bound for a uniform sampler)",
                                       "promoting ASHA, grace 1, ×2", "promoting ASHA, grace 1, ×3"}
    # The target is the median best of 2 draws: every replay of random search reaches it within 4 epochs or never.
    assert all(e is None or 1 <= e <= 4 for runs in record["searches"].values() for e in runs)

    best = min(min(p["curve"]) for p in saved["pool"])
    assert bound.main(["--task", "forecast", "--pool-file", str(tmp_path / "pool-forecast.json"), "--max-epochs", "2",
                       "--random-trials", "2", "--draws", "20", "--target", str(best - 1), "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "bound-forecast.json").read_text())
    assert record["reaching_share"] == 0 and all(e is None for runs in record["searches"].values() for e in runs)
    assert "0 of the pool's 3 configurations (0.0%) reach it" in (tmp_path / "bound-forecast.md").read_text()
    with pytest.raises(SystemExit, match="its task and epochs are 'forecast', 2"):
        bound.main(["--task", "forecast", "--pool-file", str(tmp_path / "pool-forecast.json"), "--out", str(tmp_path)])


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_the_warm_starts_portfolio_gives_every_bundled_space_points_of_its_own(name):
    """The portfolio's points for a space are distinct points of that space (each passes as a point to evaluate);
    a narrow space (the grid example's) can hold fewer."""
    from search_spaces import load_space
    from search_spaces.points import parse_point
    from search_spaces.portfolio import portfolio_points

    space = load_space(name)
    points = portfolio_points(space, 4)
    assert len(points) == (2 if name == "lstm_grid" else 4) and all(p["family"] in space.families for p in points)
    for point in points:
        parse_point(point, space, name)  # raises on a value outside the space
    assert len({json.dumps(p, sort_keys=True) for p in points}) == len(points)


def test_the_portfolio_is_chosen_greedily_sized_to_the_search_and_never_given_to_a_users_own_model():
    from search_spaces import SearchSpace, load_space
    from search_spaces.portfolio import (
        into_space,
        load,
        portfolio_points,
        select,
        warm_start_size,
    )

    # The second pick is the one that covers the task the first is weak on, not the best on average.
    scores = [{"a": 0.0, "b": 0.9}, {"a": 0.4, "b": 0.4}, {"a": 0.9, "b": 0.0}, {"a": 0.1}]
    assert select(scores, ["a", "b"], range(4), 2) == [1, 0]
    assert select(scores, ["a", "b"], [0, 2, 3], 3) == [0, 2, 3]
    assert [warm_start_size(n, given) for n, given in [(48, 0), (16, 0), (16, 1), (8, 1), (4, 1), (3, 0)]] == [4, 4, 3, 1, 0, 0]
    # A family of the user's own class, even one named like a built-in, gets nothing; a space's constant stays.
    mine = SearchSpace(families={"mlp": {"width": 3}}, train={"lr": 0.01}, source="mine", models={"mlp": "my_models.py:Net"})
    assert portfolio_points(mine, 4) == []
    fixed = SearchSpace(families={"mlp": {"hidden_size": 64}}, train={"lr": 0.01}, source="fixed")
    mlp = next(c["point"] for c in load() if c["point"]["family"] == "mlp")
    assert into_space(mlp, fixed) == {"family": "mlp", "hidden_size": 64, "lr": 0.01}
    assert into_space(mlp, load_space("tabular"))["lr"] == mlp["lr"]


def test_points_to_evaluate_come_first_then_the_portfolio_unless_warm_start_is_none(tmp_path, capsys):
    from orchestrator.experiment.config import parse_config
    from orchestrator.experiment.load import check_points, check_space
    from search_spaces.points import parse_point
    from search_spaces.portfolio import portfolio_points

    raw = {"task": {"kind": "forecast"}, "search_space": SPACE, "num_samples": 16, "points_to_evaluate": [POINT]}
    file = tmp_path / "exp.yaml"
    config = parse_config(raw, str(file))
    space = check_space(config, file)
    expected = [parse_point(POINT, space, "p"), *(parse_point(p, space, "p") for p in portfolio_points(space, 3))]
    assert check_points(config, space, file) == expected and len(expected) == 4
    assert check_points(parse_config({**raw, "warm_start": "none"}, str(file)), space, file) == expected[:1]
    grid = parse_config({**raw, "searcher": "grid", "points_to_evaluate": []}, str(file))
    assert check_points(grid, space, file) == []
    # `orchestrator list` names every value the key takes, as the config accepts them.
    from typing import get_args

    from orchestrator.experiment.config import ExperimentConfig
    from search_spaces.portfolio import choices

    assert set(choices()) == set(get_args(ExperimentConfig.model_fields["warm_start"].annotation))
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.split("warm starts (warm_start):\n")[1]
    assert listed.startswith("  none ") and "\n  portfolio    up to 4 configurations" in listed and "33 measured candidates" in listed


@pytest.mark.timeout(180)
def test_a_search_runs_its_points_then_the_portfolio_then_its_searchers_own(tmp_path, ray_session, capsys):
    from search_spaces import parse_space
    from search_spaces.portfolio import portfolio_points

    path = experiment(tmp_path, points_to_evaluate=[POINT], num_samples=6, max_concurrent=1, scheduler={"max_epochs": 2})
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "first: 1 point(s) of points_to_evaluate, then 1 from the warm start's portfolio" in out, out
    started = started_configs(tmp_path / "runs" / "s")
    portfolio = portfolio_points(parse_space(SPACE, "inline"), 1)[0]
    assert len(started) == 6
    first, second = ({k.removeprefix("model/"): v for k, v in config.items()} for config in started[:2])
    assert {k: first[k] for k in POINT} == POINT and {k: second[k] for k in portfolio} == portfolio
    # Through the promoting ASHA's and the warm start's wrappers, HyperOpt learned every trial once.
    state = saved_layers(tmp_path / "runs" / "s")[-1]
    assert len([t for t in state["_hpopt_trials"].trials if t["result"].get("status") == "ok"]) == 6


def test_the_shipped_portfolio_is_what_the_benchmark_computes_and_its_judgement_holds_each_task_out():
    """search_spaces/portfolio.json is `benchmarks.portfolio --ship` over the committed measurements; the
    leave-one-task-out portfolios the quality study ran hold no candidate of their held-out task, and are the
    ones the committed measurements give."""
    from benchmarks import portfolio as B
    from benchmarks.study import RESULTS_DIR, TASKS
    from search_spaces import load_space
    from search_spaces.portfolio import PORTFOLIO_FILE

    cands, pool_bests = B.measurements(RESULTS_DIR, 8)
    assert B.ship(cands, pool_bests, 8) == json.loads(PORTFOLIO_FILE.read_text())
    for held in TASKS:
        others = [t for t in TASKS if t != held]
        chosen = B.select(cands, others, set(load_space(TASKS[held][1]).families), 4, pool_bests)
        assert len(chosen) == 4 and all(cands[i]["source"] in others for i in chosen)
        points = [B.into_space(cands[i]["point"], TASKS[held][1]) for i in chosen]
        assert points == json.loads((RESULTS_DIR / f"portfolio-loto-{held}.json").read_text())


@pytest.mark.timeout(180)
def test_the_portfolio_benchmark_trains_given_points_through_the_orchestrator(ray_session):
    from benchmarks import portfolio as B
    from search_spaces import load_space
    from search_spaces.portfolio import portfolio_points

    points = portfolio_points(load_space("forecast"), 2)
    curves = B.train_points("forecast", points, 2)
    assert len(curves) == 2 and all(len(c) == 2 and all(math.isfinite(v) for v in c) for c in curves)


def test_bohbs_hyperband_resumable_takes_rays_recursive_call():
    """HyperBandForBOHB calls `choose_trial_to_run(controller, allow_recurse=False)` on itself when its band has no
    trial to run: the resumable wrapper passes Ray's own arguments through (a real bohb + hyperband run failed on it)."""
    from ray.tune.schedulers import HyperBandForBOHB

    from orchestrator.search.schedulers import SCHEDULERS
    from orchestrator.search.searchers import SEARCHERS
    from search_spaces import load_space

    record = SCHEDULERS["hyperband"]
    scheduler = record.build(record.options(kind="hyperband", max_epochs=3), load_space("forecast"), SEARCHERS["bohb"])
    assert isinstance(scheduler, HyperBandForBOHB)

    class Controller:
        def get_trials(self):
            return []

    assert scheduler.choose_trial_to_run(Controller(), allow_recurse=False) is None
    assert scheduler.choose_trial_to_run(Controller()) is None
