"""Infeasible trials: a model whose constructor refuses some combinations of its hyperparameters. The search runs,
each refused trial ends `infeasible` with one console line (the traceback stays in its folder), the readers show
the status, and the searcher learns to draw the refused region less."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.reading import results as R
from trainables.trial import TrialConfig

MODEL = '''
import torch
from torch import nn


class Heads(nn.Module):
    """Refuses a width that its heads do not divide, as attention layers do."""

    def __init__(self, spec, width: int = 16, heads: int = 2):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.proj = nn.Linear(spec.in_features * spec.seq_len, width)
        self.out = nn.Linear(width, spec.out_features)

    def forward(self, x):
        return self.out(torch.relu(self.proj(x.flatten(1))))
'''
WIDTHS, HEADS = [8, 12, 16, 20, 24, 30], [2, 3, 4, 5]  # 8 of the 24 combinations are refused


def feasible(config: dict) -> bool:
    model = TrialConfig.from_tune(config).model
    return model["width"] % model["heads"] == 0


def write_experiment(tmp_path, trials: int) -> str:
    (tmp_path / "heads.py").write_text(textwrap.dedent(MODEL))
    config = {
        "name": "heads", "task": {"kind": "forecast", "window": 8},
        "search_space": {"families": {"heads": {"model": "heads.py:Heads", "width": {"choice": WIDTHS}, "heads": {"choice": HEADS}}},
                         "train": {"lr": {"loguniform": [0.003, 0.03]}, "batch_size": 64}},
        "searcher": "hyperopt", "scheduler": {"kind": "fifo", "max_epochs": 1}, "num_samples": trials, "max_concurrent": 1,
        "warm_start": "none", "seed": 3, "storage": str(tmp_path / "runs"),
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def test_validation_accepts_a_family_that_builds_for_some_combinations(tmp_path, capsys):
    assert main(["validate", write_experiment(tmp_path, 4)]) == 0
    err = capsys.readouterr().err
    assert "families.heads:" in err and "sampled combinations cannot run" in err and "is not a multiple of heads" in err, err
    assert "heads.py, line" in err, "the user's file and line"


@pytest.mark.timeout(300)
def test_infeasible_trials_end_as_such_and_the_searcher_draws_them_less(tmp_path, ray_session, capsys):
    trials = 60
    assert main(["run", write_experiment(tmp_path, trials)]) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out
    run_dir = tmp_path / "runs" / "heads"
    records = R.load_trials(run_dir)  # in start order: the searcher's order
    assert len(records) == trials, "infeasible trials count toward num_samples"
    bad = [t for t in records if not feasible(t.config)]
    assert bad and all(t.status(1) == R.INFEASIBLE and t.epochs == 0 for t in bad)
    assert all(t.status(1) == R.FINISHED for t in records if feasible(t.config))
    first = bad[0]
    line = next(line for line in out.splitlines() if f"trial {first.trial_id} infeasible" in line)
    assert "is not a multiple of heads" in line and "heads.py, line" in line
    assert "infeasible.txt" in line and "Traceback" in (first.path / "infeasible.txt").read_text()
    assert f"{len(bad)} infeasible" in out  # the summary's count

    # best --json: ranked last, with their status; the DataFrame has the status too.
    assert main(["best", str(run_dir), "--json", "--top", str(trials)]) == 0
    ranked = json.loads(capsys.readouterr().out)["trials"]
    statuses = [row["status"] for row in ranked]
    assert statuses[-len(bad):] == [R.INFEASIBLE] * len(bad) and R.INFEASIBLE not in statuses[:-len(bad)]
    import orchestrator

    frame = orchestrator.load_run(run_dir).dataframe()
    assert (frame["status"] == R.INFEASIBLE).sum() == len(bad)
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert f"<div class=card><b>{len(bad)}</b><span>infeasible</span></div>" in page, "the report's card counts them"

    # Each refused model (width, heads) was started once: a later suggestion of it, at any learning rate, was answered
    # with its result (the worst value, which the searcher learns) instead of a trial.
    refused = [(TrialConfig.from_tune(t.config).model["width"], TrialConfig.from_tune(t.config).model["heads"]) for t in bad]
    assert len(refused) == len(set(refused)), refused
    # So the search starts refused combinations less often as it goes.
    half = trials // 2
    early = sum(not feasible(t.config) for t in records[:half])
    late = sum(not feasible(t.config) for t in records[half:])
    print(f"infeasible trials: {early} of the first {half}, {late} of the last {trials - half}")
    assert late <= early, (early, late)


def test_optuna_learns_an_infeasible_trial_as_a_violated_constraint():
    """Optuna's own way: a trial that could not run is marked infeasible (a constraint above 0), so its TPE keeps it
    out of the good group whatever value it reported; a taught earlier trial (extend, given points) likewise."""
    from orchestrator.search.searchers import SEARCHERS
    from orchestrator.search.warm_start import Evaluated
    from search_spaces import parse_space
    from trainables import constants as C

    space = parse_space({"families": {"mlp": {"hidden_size": {"choice": [8, 16]}}}, "train": {"lr": {"loguniform": [1e-3, 1e-2]}}},
                        "space")
    searcher = SEARCHERS["optuna"].build(space, "val_rmse", "min", 0, 10)
    config = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {C.INFEASIBLE: "building the model: refused", "val_rmse": C.DIVERGED_PENALTY})
    searcher.suggest("t2")
    searcher.on_trial_complete("t2", {"val_rmse": 3.0})
    SEARCHERS["optuna"].learn(searcher, space, Evaluated(config, C.DIVERGED_PENALTY, 0, infeasible=True))
    trials = searcher._ot_study.trials
    assert [t.constraints for t in trials] == [{"infeasible": 1.0}, {}, {"infeasible": 1.0}]
