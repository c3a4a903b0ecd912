"""The structure's rules, checked: the import graph, the torch-free readers, one record per concept, and
runs and exports written before the records existed still read back.

See docs/ARCHITECTURE.md for the layers these tests hold the code to.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from orchestrator.search.schedulers import SCHEDULERS

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("orchestrator", "trainables", "search_spaces")
MAX_MODULE_LINES = 300  # a guide: a module past it may hold two concepts; one concept is never split to meet it


def _imports(path: Path, modules: frozenset[str] = frozenset()) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too). `from a import b`
    counts as `a.b` where that is one of `modules` (a submodule, not a name of package a), else as `a`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names}
    return found


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(packages=(*PACKAGES, "benchmarks")) -> dict[str, set[str]]:
    """module -> the modules of `packages` it imports (at any depth in the file)."""
    paths = {_name(path): path for package in packages for path in _modules(package)}
    known = frozenset(paths)
    return {name: {m for m in _imports(path, known) if m in paths and m != name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    """No module imports, at any depth, a module that imports it back (in the product and the benchmarks)."""
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# What each layer of the orchestrator may not import (at any depth in the file). Below them all: trainables and
# search_spaces; above them all: the entry points (`cli`, `api`), which nothing imports.
FORBIDDEN = {
    "orchestrator.experiment": ("orchestrator.running", "orchestrator.reading", "orchestrator.cli", "orchestrator.api", "torch", "ray"),
    "orchestrator.search": ("orchestrator.running", "orchestrator.reading", "orchestrator.watch", "orchestrator.cli", "orchestrator.api"),
    "orchestrator.reading": ("orchestrator.running", "orchestrator.watch", "orchestrator.cli", "orchestrator.api", "torch", "ray.tune"),
    "orchestrator.watch": ("orchestrator.running", "orchestrator.cli", "orchestrator.api"),  # TensorBoard writes through torch
    "orchestrator.running": ("orchestrator.cli", "orchestrator.api"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_imports_only_below_it(layer):
    for path in _modules(layer.replace(".", "/")):
        bad = {m for m in _imports(path) for f in FORBIDDEN[layer] if m == f or m.startswith(f + ".")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_trainables_stays_at_the_bottom():
    """trainables/ is the PyTorch side: it never imports the orchestrator or the search spaces."""
    for path in _modules("trainables"):
        upward = {m for m in _imports(path) if m.split(".")[0] in ("orchestrator", "search_spaces")}
        assert not upward, f"{path.relative_to(REPO)} imports {sorted(upward)}"


def test_search_spaces_never_import_the_orchestrator():
    for path in _modules("search_spaces"):
        upward = {m for m in _imports(path) if m.split(".")[0] == "orchestrator"}
        assert not upward, f"{path.relative_to(REPO)} imports {sorted(upward)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_small(package):
    """A module that outgrows this holds more than one job: split it along its jobs."""
    for path in _modules(package):
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} has {lines} lines"


def _fresh(code: str) -> dict:
    """Runs `code` in a fresh interpreter and returns which heavy modules it ended up importing."""
    script = code + "\nimport json, sys\nprint(json.dumps({m: m in sys.modules for m in "
    script += "('torch', 'ray.tune', 'orchestrator.running.runner', 'orchestrator.running.tuning', 'orchestrator.running.prepare')}))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_best_reads_a_run_without_torch_or_ray_tune(finished_run):
    """`orchestrator best` (table and JSON) on a finished run imports neither torch nor Ray Tune nor the run flow."""
    loaded = _fresh(
        "import contextlib, io\nfrom orchestrator.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()) as out:\n    assert main(['best', {str(finished_run)!r}]) == 0\n"
        f"    assert main(['best', {str(finished_run)!r}, '--json']) == 0\nassert 'val_bpc' in out.getvalue()"
    )
    assert not any(loaded.values()), loaded


def test_reading_layer_plans_trials_without_torch(finished_run):
    """The reading layer answers every question about a run (planned trials, space, leaderboard) torch-free."""
    loaded = _fresh(
        "from orchestrator.reading import results as R\n"
        f"run = R.read_run({str(finished_run)!r})\n"
        "assert run.planned_trials() == 8, run.planned_trials()\n"
        "assert run.space().families\n"
        "rows = R.leaderboard_rows(run.trials(), run.metric, run.mode, run.max_epochs)\n"
        "assert rows[0]['best'] is not None and rows[0]['rank'] == 1"
    )
    assert not any(loaded.values()), loaded


def test_config_validation_registries_agree():
    """Every registry entry is reachable from an experiment file: each scheduler with its default options, each
    searcher on each bundled space it accepts, each task with its default space."""
    from orchestrator.experiment.config import parse_config
    from orchestrator.search.schedulers import SCHEDULERS, pairing_problem
    from orchestrator.search.searchers import SEARCHERS
    from trainables.tasks import TASKS

    for task in TASKS:
        for searcher in SEARCHERS:
            for scheduler in SCHEDULERS:
                if pairing_problem(searcher, scheduler):
                    continue  # refused with its rule (tests/test_bad_input.py)
                required = {"loader": "my_data.py:load"} if task == "custom" else {}  # a custom task has no built-in data
                raw = {"task": {"kind": task, **required}, "searcher": searcher, "scheduler": {"kind": scheduler}}
                config = parse_config(raw, "test.yaml")
                assert config.space_ref == TASKS[task].default_space
                assert config.scheduler.kind == scheduler


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_builds_and_describes_itself(name):
    from ray.tune.schedulers import TrialScheduler

    from orchestrator.search.searchers import SEARCHERS
    from search_spaces import load_space

    record = SCHEDULERS[name]
    options = record.options(kind=name)
    assert isinstance(record.build(options, load_space("charlm"), SEARCHERS["random"]), TrialScheduler)
    assert record.describe(options.model_dump()).startswith(name)


def test_search_space_defaults_to_the_tasks_own(tmp_path, capsys):
    """`search_space` may be left out: `validate` says which space it took."""
    from orchestrator.cli import main

    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump({"task": {"kind": "tabular"}, "scheduler": {"max_epochs": 1}}))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "search_spaces/tabular.yaml (the task's default" in out


def test_run_written_before_scheduler_options_were_split_still_resumes_its_config(tmp_path):
    """Old runs wrote ASHA's fields for every scheduler (`fifo` with grace_period): reading them back drops those."""
    from orchestrator.running.prepare import experiment_from_run

    run = tmp_path / "old"
    run.mkdir()
    old = {"name": "old", "task": {"kind": "forecast"}, "search_space": {"families": {"mlp": {"hidden_size": 16}}},
           "searcher": "random", "scheduler": {"kind": "fifo", "max_epochs": 3, "grace_period": 1, "reduction_factor": 2.0},
           "num_samples": 2, "metric": "val_rmse", "mode": "min", "storage": str(tmp_path)}
    (run / "experiment.yaml").write_text(yaml.safe_dump(old))
    exp = experiment_from_run(run)
    assert exp.config.scheduler.kind == "fifo" and exp.config.scheduler.max_epochs == 3


def test_export_written_by_the_previous_layout_loads_and_predicts():
    """tests/data/forecast-mlp-v1.pt was written by the code before tasks became records (an MLP on sunspots,
    window 8): it loads, and predict still undoes the task's scaling exactly as it did then."""
    from trainables import load_model

    model = load_model(REPO / "tests" / "data" / "forecast-mlp-v1.pt")
    assert (model.task, model.family) == ("forecast", "mlp")
    rows = np.arange(16, dtype=np.float32).reshape(2, 8, 1) * 10
    np.testing.assert_allclose(model.predict(rows)[:, 0], [29.650243759155273, 49.26647186279297], rtol=1e-5)


def test_every_module_is_in_the_architecture_layer_table():
    """docs/ARCHITECTURE.md's layer table names every module of the product (packages' empty `__init__`s aside), and
    names no module that is gone."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    table = text[text.index("## The layers"):text.index("## One home per rule")]
    named = set(re.findall(r"`((?:orchestrator|trainables|search_spaces)/[\w/]+\.py)`", table))
    modules = {str(p.relative_to(REPO)) for package in PACKAGES for p in _modules(package)
               if p.name != "__main__.py" and not (p.name == "__init__.py" and len(p.read_text().splitlines()) <= 3)}
    assert modules - named == set(), "modules missing from docs/ARCHITECTURE.md's layer table"
    assert named - modules == set(), "docs/ARCHITECTURE.md's layer table names modules that do not exist"
