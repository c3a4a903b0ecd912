"""Model selection beyond the single best: any trial or family as a model, every trial's size and latency, the
Pareto front, picking by a rule, deployment limits that make a configuration infeasible, and ensembles.

Two real searches on the bundled sunspots series (16 trials each, about 20 s apiece) are read back through the
CLI and the API; the selection rules are also checked against direct computations on synthetic records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import orchestrator
from orchestrator.cli import main
from orchestrator.reading import results as R
from orchestrator.reading.selection import dominates, pareto_front, pick
from orchestrator.running.best_model import run_families
from trainables import load_model
from trainables.ensemble import select
from trainables.models import build_model
from trainables.objectives import Objective
from trainables.trial import TrialConfig

METRIC = "val_rmse"


def sunspots(tmp_path_factory, name: str, **extra) -> str:
    root = tmp_path_factory.mktemp(name)
    config = {"name": name, "task": {"kind": "forecast"}, "num_samples": 16, "scheduler": {"max_epochs": 4}, "seed": 0,
              "max_concurrent": 2, "storage": str(root / "runs"), **extra}
    path = root / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["run", str(path)]) == 0
    return str(root / "runs" / name)


@pytest.fixture(scope="module")
def run_dir(ray_session, tmp_path_factory) -> str:
    return sunspots(tmp_path_factory, "select")


@pytest.fixture(scope="module")
def limited_run(ray_session, tmp_path_factory) -> str:
    return sunspots(tmp_path_factory, "limited", limits={"max_params": 5000}, ensemble=3)


def best_json(run: str, capsys, *flags: str) -> dict:
    capsys.readouterr()
    assert main(["best", run, "--json", "--top", "100", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_export_of_any_trial_gives_its_recorded_best(run_dir, tmp_path, capsys):
    trials = R.load_trials(run_dir)
    ranked = [t for t in R.leaderboard(trials, METRIC, "min") if t.best_checkpoint(METRIC, "min")]
    other = ranked[2]  # not the best trial
    out = tmp_path / "t.pt"
    assert main(["export", run_dir, "--trial", other.trial_id, "--out", str(out)]) == 0
    model = load_model(out)
    assert abs(model.metrics[METRIC] - other.best(METRIC, "min")) < 1e-6, (model.metrics[METRIC], other.best(METRIC, "min"))
    assert model.family == other.family and "test_rmse" in model.metrics
    # The API gives the same model as the CLI.
    api_model = orchestrator.load_run(run_dir).trial(other.trial_id).model()
    assert api_model.metrics == model.metrics
    for a, b in zip(api_model.module.state_dict().values(), model.module.state_dict().values()):
        assert torch.equal(a, b)


def test_export_of_a_family_gives_its_best_trial(run_dir, tmp_path):
    trials = [t for t in R.load_trials(run_dir) if t.best_checkpoint(METRIC, "min")]
    family = next(f for f in ("mlp", "lstm", "gru", "rnn", "transformer") if any(t.family == f for t in trials))
    expected = min(t.best(METRIC, "min") for t in trials if t.family == family)
    out = tmp_path / "f.pt"
    assert main(["export", run_dir, "--family", family, "--out", str(out)]) == 0
    model = load_model(out)
    assert model.family == family and abs(model.metrics[METRIC] - expected) < 1e-6
    api = orchestrator.load_run(run_dir).export(tmp_path / "api.pt", family=family)
    assert load_model(api).metrics == model.metrics


def test_every_trial_has_its_parameter_count_and_latency(run_dir, capsys):
    shown = best_json(run_dir, capsys)
    families = run_families(R.check_run_dir(run_dir))
    spec = load_model(f"{run_dir}/best/model.pt").spec
    configs = {t.trial_id: t.config for t in R.load_trials(run_dir)}
    trained = [row for row in shown["trials"] if row["epochs"] > 0]
    assert len(trained) == len(shown["trials"]) == 16
    for row in trained:
        config = TrialConfig.from_tune(configs[row["trial_id"]])
        built = build_model(config.family, config.model, spec, families)
        assert row["params"] == sum(p.numel() for p in built.parameters()), row
        assert row["latency_ms"] > 0 and row["latency_ms_256"] >= row["latency_ms"] * 0.5, row
    assert "median" in shown["latency_method"]
    loaded = orchestrator.load_run(run_dir).trial(trained[0]["trial_id"]).model()
    assert trained[0]["params"] == sum(p.numel() for p in loaded.module.parameters())
    frame = orchestrator.load_run(run_dir).dataframe()
    assert {"num_params", "latency_ms", "latency_ms_256", "checkpoint"} <= set(frame.columns)
    assert frame["checkpoint"].notna().all()


def test_pareto_lists_exactly_the_non_dominated_trials(run_dir, capsys):
    rows = best_json(run_dir, capsys)["trials"]
    points = {r["trial_id"]: (r[METRIC], r["params"], r["latency_ms"]) for r in rows if r[METRIC] is not None}
    direct = {i for i, p in points.items()
              if not any(all(a <= b for a, b in zip(q, p)) and any(a < b for a, b in zip(q, p)) for q in points.values())}
    front = {r["trial_id"] for r in best_json(run_dir, capsys, "--pareto")["trials"]}
    assert front == direct and front
    assert {t.trial_id for t in orchestrator.load_run(run_dir).pareto()} == direct


def test_pick_takes_the_smallest_and_the_fastest_within_the_tolerance(run_dir, tmp_path, capsys):
    trials = R.load_trials(run_dir)
    scored = [t for t in trials if t.best(METRIC, "min") is not None]
    best = min(t.best(METRIC, "min") for t in scored)
    close = [t for t in scored if t.best(METRIC, "min") <= best * 1.2]
    smallest = min(close, key=lambda t: (t.num_params, t.best(METRIC, "min")))
    out = tmp_path / "p.pt"
    capsys.readouterr()
    assert main(["export", run_dir, "--pick", "smallest within 20%", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"trial {smallest.trial_id}" in said and "within 20%" in said, said
    assert load_model(out).module is not None
    fastest = min(close, key=lambda t: (t.latency_ms, t.best(METRIC, "min")))
    assert pick(trials, "fastest within 20%", METRIC, "min").trial.trial_id == fastest.trial_id


def test_an_ensemble_is_one_model_no_worse_on_validation(run_dir, tmp_path, capsys):
    out = tmp_path / "e.pt"
    capsys.readouterr()
    assert main(["export", run_dir, "--ensemble", "5", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "ensemble of" in said and "best single model" in said, said
    ensemble, single = load_model(out), load_model(f"{run_dir}/best/model.pt")
    assert ensemble.family == "ensemble" and ensemble.metrics[METRIC] <= single.metrics[METRIC] + 1e-9
    assert np.isfinite(ensemble.metrics["test_rmse"])
    window = ensemble.spec.seq_len
    rows = np.random.default_rng(0).uniform(0, 150, size=(3, window, ensemble.spec.in_features))
    assert ensemble.predict(rows).shape == single.predict(rows).shape
    record = orchestrator.load_run(run_dir).ensemble
    assert abs(sum(m["weight"] for m in record["members"]) - 1) < 1e-9 and len(record["members"]) <= 5
    capsys.readouterr()
    assert main(["best", run_dir]) == 0
    listed = capsys.readouterr().out
    assert all(m["trial_id"] in listed for m in record["members"]) and "members (trial, family, weight)" in listed
    assert best_json(run_dir, capsys)["ensemble"]["metrics"][METRIC] == ensemble.metrics[METRIC]


def test_limits_make_larger_models_infeasible_before_training(limited_run, capsys):
    trials = R.load_trials(limited_run)
    trained = [t for t in trials if t.epochs > 0]
    refused = [t for t in trials if (t.infeasible or "").startswith("limits.max_params")]
    assert trained and refused, [(t.trial_id, t.num_params, t.infeasible) for t in trials]
    assert all(t.num_params <= 5000 for t in trained)
    assert all(t.epochs == 0 and t.status(9) == R.INFEASIBLE and t.num_params > 5000 for t in refused)
    rows = {r["trial_id"]: r for r in best_json(limited_run, capsys)["trials"]}
    assert all(rows[t.trial_id]["status"] == "infeasible" for t in refused)
    # `ensemble: 3` built one at the end of the run, beside the best single model.
    record = orchestrator.load_run(limited_run).ensemble
    assert record and record["k"] == 3 and (R.check_run_dir(limited_run) / "best" / "ensemble.pt").is_file()
    assert record["metrics"][METRIC] <= record["best_single"]["metrics"][METRIC] + 1e-9


def test_a_latency_limit_ends_slow_models_after_their_first_epoch(ray_session, tmp_path_factory):
    """A one-layer MLP predicts in ~0.04 ms here and a three-layer LSTM of 128 units in ~0.6 ms: a 0.15 ms limit
    keeps the first and refuses the second, with a factor of about 4 to spare either way."""
    run = sunspots(tmp_path_factory, "fast", num_samples=6, scheduler={"kind": "fifo", "max_epochs": 2}, warm_start="none",
                   search_space={"families": {"mlp": {"hidden_size": 16}, "lstm": {"hidden_size": 128, "num_layers": 3}}},
                   limits={"max_latency_ms": 0.15})
    trials = R.load_trials(run)
    slow = [t for t in trials if (t.infeasible or "").startswith("limits.max_latency_ms")]
    kept = [t for t in trials if t.epochs > 0]
    assert slow and kept and len(slow) + len(kept) == len(trials), [(t.family, t.latency_ms, t.infeasible) for t in trials]
    assert all(t.family == "lstm" and t.latency_ms > 0.15 and t.epochs == 0 and t.status(2) == R.INFEASIBLE for t in slow)
    assert all(t.family == "mlp" and t.latency_ms <= 0.15 for t in kept)
    assert not any(t.checkpoints() for t in slow), "an infeasible trial keeps no model"


def test_choices_that_name_nothing_exportable_are_refused(limited_run, tmp_path, capsys):
    refused = next(t for t in R.load_trials(limited_run) if t.infeasible)
    cases = {
        ("--trial", "nope"): "the run has no such trial; its trials:",
        ("--trial", refused.trial_id): "keeps no checkpoint",
        ("--family", "cnn"): "no trial of that family; the run's families:",
        ("--pick", "tiniest"): "is not a rule; write 'smallest within X%'",
    }
    for flags, message in cases.items():
        capsys.readouterr()
        assert main(["export", limited_run, *flags, "--out", str(tmp_path / "x.pt")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / "x.pt").exists()


def test_a_limit_no_sampled_model_meets_is_refused_before_anything_runs(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "task": {"kind": "forecast"}, "limits": {"max_params": 10},
                                    "storage": str(tmp_path / "runs")}))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "key 'limits.max_params': value 10: every sampled model is larger" in err, err
    path.write_text(yaml.safe_dump({"task": {"kind": "forecast"}, "limits": {"max_params": 0}}))
    assert main(["validate", str(path)]) == 2
    assert "limits.max_params" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


class Record(R.TrialRecord):
    """A trial record with given figures (the rules read nothing else)."""

    def __init__(self, trial_id: str, value: float, params: int, latency: float):
        super().__init__(trial_id, None, {"arch": {"family": "mlp", "model": {}}},
                         [{METRIC: value, "num_params": params, "latency_ms": latency, "training_iteration": 1}])


def test_the_front_and_the_picks_match_a_direct_computation():
    rng = np.random.default_rng(1)
    records = [Record(str(i), *rng.uniform(1, 10, 1), int(rng.integers(100, 10000)), *rng.uniform(0.01, 2, 1)) for i in range(200)]
    points = {r.trial_id: (r.best(METRIC, "min"), r.num_params, r.latency_ms) for r in records}
    direct = {i for i, p in points.items() if not any(dominates(q, p) for q in points.values())}
    assert {r.trial_id for r in pareto_front(records, METRIC, "min")} == direct
    best = min(p[0] for p in points.values())
    close = [r for r in records if r.best(METRIC, "min") <= best * 1.05]
    assert pick(records, "smallest within 5%", METRIC, "min").trial is min(close, key=lambda r: r.num_params)
    # A larger-is-better metric: within X% below the best.
    acc = [Record(str(i), v, p, 1.0) for i, (v, p) in enumerate([(0.90, 500), (0.895, 100), (0.80, 10)])]
    assert pick(acc, "smallest within 1%", METRIC, "max").trial.trial_id == "1"


def test_selection_is_never_worse_than_the_best_member_and_helps_independent_errors():
    rng = np.random.default_rng(0)
    truth = torch.tensor(rng.normal(size=(500, 1)), dtype=torch.float32)
    members = [truth + torch.tensor(rng.normal(scale=s, size=(500, 1)), dtype=torch.float32) for s in (0.5, 0.55, 0.6, 3.0)]
    objective = Objective({"name": "rmse", "scale": [1.0]})
    weights, value, singles = select(members, truth, objective, METRIC, "min")
    assert value < min(singles) * 0.85, (value, singles)  # three independent errors average out
    assert weights[3] == 0 and abs(sum(weights) - 1) < 1e-9
    # Classification: probabilities averaged; still never worse than the best single model.
    labels = torch.tensor(rng.integers(0, 3, 400))
    logits = [torch.tensor(rng.normal(size=(400, 3)), dtype=torch.float32) + 2 * torch.nn.functional.one_hot(labels, 3) * k
              for k in (0.2, 0.5, 1.0)]
    weights, value, singles = select(logits, labels, Objective({"name": "accuracy"}), "val_log_loss", "min")
    assert value <= min(singles) + 1e-12
