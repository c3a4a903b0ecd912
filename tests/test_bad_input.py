"""Bad input of every kind (config, search space, data, CLI): exit status 2, one `error:` message naming
the file, the key, the value and the rule, no traceback, and no run directory written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main

GOOD = {
    "task": {"kind": "forecast"},
    "search_space": {"families": {"mlp": {"hidden_size": 16}}},
    "num_samples": 1,
    "scheduler": {"max_epochs": 1},
}


def with_(**changes):
    """GOOD with top-level keys replaced (a value of None deletes the key)."""
    config = yaml.safe_load(yaml.safe_dump(GOOD))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def csv(tmp: Path, text: str, name: str = "data.csv") -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


POINTS_SPACE = {"families": {"mlp": {"hidden_size": {"choice": [16, 32]}}}, "train": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}}

# (id, config or raw text, extra CLI args, substrings the message must contain)
CASES = [
    ("malformed-yaml", "task: {kind: charlm\nsearch_space: charlm\n", [], ["malformed YAML"]),
    ("not-a-mapping", "- task\n- charlm\n", [], ["must be a mapping of keys", "list"]),
    ("empty-file", "", [], ["the file is empty"]),
    ("unknown-top-key", with_(num_sample=3), [], ["unknown key 'num_sample'", "did you mean 'num_samples'?"]),
    ("unknown-nested-key", with_(scheduler={"grace": 2}), [], ["unknown key 'scheduler.grace'", "did you mean 'grace_period'?"]),
    ("unknown-task-option", with_(task={"kind": "forecast", "windw": 3}), [], ["unknown key 'task.windw'", "did you mean 'window'?"]),
    ("wrong-type", with_(num_samples="many"), [], ["key 'num_samples'", "'many'", "valid integer"]),
    ("non-positive", with_(num_samples=0), [], ["key 'num_samples'", "value 0", "greater than or equal to 1"]),
    ("grace-over-max", with_(scheduler={"max_epochs": 2, "grace_period": 5}), [], ["grace_period <= max_epochs"]),
    ("reduction-factor", with_(scheduler={"reduction_factor": 1}), [], ["scheduler.reduction_factor", "greater than 1"]),
    ("unknown-task", with_(task={"kind": "images"}), [], ["task.kind", "'images'", "charlm, custom, forecast, tabular"]),
    ("unknown-searcher", with_(searcher="bayes"), [], ["unknown searcher 'bayes'", "bohb, grid, hyperopt, optuna, random"]),
    ("unknown-scheduler", with_(scheduler={"kind": "pbx"}), [], ["unknown scheduler 'pbx'", "asha, fifo, hyperband, median, pbt"]),
    ("bohb-without-hyperband", with_(searcher="bohb"), [], ["searcher 'bohb' works with scheduler hyperband only", "scheduler 'asha'"]),
    ("pbt-with-grid", with_(searcher="grid", scheduler={"kind": "pbt"}), [], ["scheduler 'pbt' works with searcher random only", "searcher 'grid'"]),
    ("pbt-with-tpe", with_(scheduler={"kind": "pbt"}), [], ["scheduler 'pbt' works with searcher random only", "searcher 'hyperopt'"]),
    ("pbt-nothing-to-mutate", with_(searcher="random", scheduler={"kind": "pbt"}), [], ["scheduler.kind", "pbt mutates training hyperparameters"]),
    ("point-outside-space", with_(search_space=POINTS_SPACE, points_to_evaluate=[{"hidden_size": 16, "lr": 0.5}]), [], ["points_to_evaluate[0].lr", "value 0.5", "outside the space"]),
    ("point-unknown-key", with_(search_space=POINTS_SPACE, points_to_evaluate=[{"hidden_size": 16, "lr": 0.005, "dropout": 0.1}]), [], ["points_to_evaluate[0]", "unknown key 'dropout'"]),
    ("point-missing-key", with_(search_space=POINTS_SPACE, points_to_evaluate=[{"model/hidden_size": 32}]), [], ["points_to_evaluate[0]", "key 'lr' is missing"]),
    ("unknown-warm-start", with_(warm_start="defaults"), [], ["key 'warm_start'", "'defaults'", "'portfolio' or 'none'"]),
    ("more-points-than-trials", with_(search_space=POINTS_SPACE, points_to_evaluate=[{"hidden_size": 16, "lr": 0.005}] * 2), [], ["points_to_evaluate", "2 points", "num_samples is 1"]),
    ("unknown-family", with_(search_space={"families": {"lstn": {}}}), [], ["unknown model family 'lstn'", "gru, lstm, mlp, rnn"]),
    ("unknown-hparam", with_(search_space={"families": {"mlp": {"hiden": 3}}}), [], ["families.mlp.hiden", "hidden_size"]),
    ("inverted-range", with_(search_space={"families": {"mlp": {"dropout": {"uniform": [0.5, 0.1]}}}}), [], ["families.mlp.dropout", "`low < high` must hold", "low=0.5, high=0.1"]),
    ("loguniform-non-positive", with_(search_space={"families": {"mlp": {}}, "train": {"lr": {"loguniform": [0, 0.1]}}}), [], ["train.lr", "`low > 0` must hold"]),
    ("empty-choice", with_(search_space={"families": {"mlp": {"activation": {"choice": []}}}}), [], ["families.mlp.activation", "at least one option"]),
    ("bad-option", with_(search_space={"families": {"mlp": {"activation": {"choice": ["relu", "swish"]}}}}), [], ["activation must be one of", "'swish'"]),
    ("family-cannot-run-task", with_(task={"kind": "tabular"}, search_space={"families": {"lstm": {}}}), [], ["model family 'lstm' cannot run task 'tabular'", "families for this task: mlp"]),
    ("bidirectional-charlm", with_(task={"kind": "charlm", "max_chars": 5000}, search_space={"families": {"gru": {"bidirectional": True}}}), [], ["bidirectional must be false", "families.gru"]),
    ("missing-space-file", with_(search_space="no_such_space.yaml"), [], ["'no_such_space.yaml' is neither a bundled space"]),
    ("missing-data-file", with_(task={"kind": "forecast", "data": "nowhere.csv"}), [], ["task.data", "file not found", "nowhere.csv"]),
    ("missing-target-column", lambda t: with_(task={"kind": "tabular", "data": csv(t, "a,b\n1,2\n3,4\n"), "target": "label"}), [], ["task.target", "column 'label' is not in", "columns: a, b"]),
    ("target-required", lambda t: with_(task={"kind": "tabular", "data": csv(t, "a,b\n1,2\n3,4\n")}), [], ["task.target: required"]),
    ("non-numeric-csv", lambda t: with_(task={"kind": "forecast", "data": csv(t, "y\n1\n2\nthree\n4\n")}), [], ["column 'y'", "must be numeric", "row 4", "'three'"]),
    ("series-too-short", lambda t: with_(task={"kind": "forecast", "data": csv(t, "y\n1\n2\n3\n4\n5\n"), "window": 3}), [], ["too little data"]),
    ("tiny-corpus", lambda t: with_(task={"kind": "charlm", "data": csv(t, "hello world", "c.txt")}), [], ["corpus", "too small", "11 characters"]),
    ("empty-corpus", lambda t: with_(task={"kind": "charlm", "data": csv(t, "", "e.txt")}), [], ["too small", "0 characters"]),
    ("binary-corpus", lambda t: with_(task={"kind": "charlm", "data": str(Path(__file__).resolve().parent.parent / "trainables" / "data" / "digits.csv.gz")}), [], ["cannot read", "as UTF-8 text"]),
    ("metric-not-reported", with_(metric="val_bpc"), [], ["key 'metric'", "'val_bpc'", "forecast reports val_loss, val_mae, val_mape, val_rmse"]),
    ("unknown-metric", with_(metric="val_auc"), [], ["unknown metric 'val_auc'", "known: val_accuracy, val_bpc, val_f1"]),
    ("gpus-above-one", with_(resources={"gpu": 2}), [], ["resources.gpu", "trains on one GPU", "at most 1", "got 2"]),
    ("impossible-resources", with_(resources={"cpu": 64}), [], ["resources", "cpu=64", "no node has that much"]),
    ("workers-share-a-gpu", with_(resources={"gpu": 0.5, "workers": 2}), [], ["resources", "workers: 2", "whole GPU", "gpu: 0.5"]),
    ("workers-zero", with_(resources={"workers": 0}), [], ["resources.workers", "value 0"]),
    ("workers-beyond-cluster", with_(resources={"cpu": 1, "workers": 3}), [], ["3 workers of cpu=1", "cpu=3, gpu=0 in all", "cannot place 3 such workers", "room for 2 workers"]),
    ("bad-name", with_(name="a/b"), [], ["key 'name'", "'a/b'"]),
    ("set-syntax", GOOD, ["--set", "num_samples"], ["expected key=value"]),
    ("set-value", GOOD, ["--set", "scheduler.max_epochs=0"], ["scheduler.max_epochs", "value 0"]),
]


# Cases refused only once Ray says what the cluster holds (the session's 2-CPU Ray); every other case is refused
# before Ray starts, and stays in the fast lane.
NEEDS_RAY = {"impossible-resources", "workers-beyond-cluster"}


@pytest.mark.parametrize("case_id,config,extra,needles",
                         [pytest.param(*c, marks=pytest.mark.slow) if c[0] in NEEDS_RAY else c for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(case_id, config, extra, needles, tmp_path, capsys, request):
    if case_id in NEEDS_RAY:
        request.getfixturevalue("ray_session")
    ray_was_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    storage = tmp_path / "storage"
    if callable(config):
        config = config(tmp_path)
    path = tmp_path / "experiment.yaml"
    if isinstance(config, str):
        path.write_text(config)
    else:
        path.write_text(yaml.safe_dump({**config, "storage": str(storage)}, sort_keys=False))
    capsys.readouterr()
    code = main(["run", str(path), *extra, "--storage", str(storage)])
    if not ray_was_up and "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
        pytest.fail(f"case {case_id} started Ray before refusing the experiment: list it in NEEDS_RAY")
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert not storage.exists(), "a rejected experiment must write nothing"


def test_missing_experiment_file(capsys):
    assert main(["run", "does/not/exist.yaml"]) == 2
    assert "experiment file not found" in capsys.readouterr().err


def test_a_family_that_runs_for_some_combinations_validates_with_a_warning(tmp_path, capsys):
    """bidirectional is a choice and half the combinations cannot predict every next character: validation accepts
    the space and says what share of a seeded sample fails, and the first error (those trials end infeasible)."""
    path = tmp_path / "some.yaml"
    config = {**GOOD, "task": {"kind": "charlm", "max_chars": 5000},
              "search_space": {"families": {"gru": {"bidirectional": {"choice": [False, True]}, "hidden_size": {"choice": [8, 16]}}}}}
    path.write_text(yaml.safe_dump(config))
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "valid." in captured.out
    assert "warning: " in captured.err and "families.gru: 2 of 4 sampled combinations cannot run" in captured.err, captured.err
    assert "bidirectional must be false" in captured.err and "end infeasible" in captured.err


def test_good_config_validates(tmp_path, capsys):
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    assert main(["validate", str(path)]) == 0


# `orchestrator run --data FILE` has no experiment file to edit: a fix is told as the `--set` flag that applies it,
# and that flag makes the same command valid; the same data in an experiment file is told the key to set.
SERIES_GAP = "t,load\n" + "".join(f"{i},{'' if i == 7 else 100 + i}\n" for i in range(60))
SHORT_SERIES = "t,load\n" + "".join(f"{i},{100 + i}\n" for i in range(20))
TABLE = "a,b,y\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(40))
FEATURE_GAP = TABLE.replace("\n2,2,0\n", "\n,2,0\n")
TARGET_GAP = TABLE.replace("\n2,2,0\n", "\n2,2,\n")
# (id, file, its text, the flags naming the task, the fix told to `--data`, the fix told to an experiment file)
DATA_CASES = [
    ("series-gap", "s.csv", SERIES_GAP, {"forecast": "load"}, "add --set task.missing=interpolate (or drop, ffill) to use such a file",
     "set task.missing to drop, ffill or interpolate to use such a file"),
    ("table-gap", "t.csv", FEATURE_GAP, {"target": "y"}, "add --set task.missing=drop (or ffill) to use such a file",
     "set task.missing to drop or ffill to use such a file"),
    ("target-gap", "t.csv", TARGET_GAP, {"target": "y"}, "add --set task.missing=drop to leave out the rows without a target",
     "set task.missing to drop to leave out the rows without a target"),
    ("window-too-long", "s.csv", SHORT_SERIES, {"forecast": "load"}, "add --set task.window=5 (short enough to leave every split samples)",
     "set task.window to 5 (short enough"),
    ("corpus-too-small", "n.txt", "hello world, this is a tiny corpus of text " * 2 + "\n", {},
     "add --set task.seq_len=14 (the longest window it holds enough of)", "set task.seq_len to 14 (the longest"),
]


@pytest.mark.parametrize("case_id,name,text,task_flags,flag_fix,file_fix", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_a_data_users_fix_is_the_set_flag_and_a_file_users_the_key(case_id, name, text, task_flags, flag_fix, file_fix,
                                                                     tmp_path, capsys, monkeypatch):
    from orchestrator.experiment.from_data import experiment_for_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text)
    flags = [arg for key, value in task_flags.items() for arg in (f"--{key}", value)]
    storage = tmp_path / "runs"
    assert main(["run", "--data", name, *flags, "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --data {name}: ") and err.count("\n") == 1 and flag_fix in err, err
    assert "set task." not in err.replace("--set task.", ""), "a --data user has no file to set a key in"
    assert not storage.exists()
    assignment = flag_fix.split("--set ", 1)[1].split()[0]
    assert main(["validate", "--data", name, *flags, "--set", assignment]) == 0, capsys.readouterr().err

    raw, _ = experiment_for_data(name, **task_flags)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({**raw, "storage": str(storage)}))
    capsys.readouterr()
    assert main(["validate", "exp.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: exp.yaml: ") and file_fix in err and "--set" not in err, err
