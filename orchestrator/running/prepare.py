"""Everything checked and loaded before a run starts: the data path, the task's data, the metric, the space
against the data; and the experiment of an existing run directory, for resume and export.

Nothing here writes anything, so a rejected experiment leaves no run directory behind.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from orchestrator.errors import UserError
from orchestrator.experiment.config import ExperimentConfig, parse_config
from orchestrator.experiment.load import Experiment, make_experiment
from orchestrator.reading import results as R
from trainables import constants as C
from trainables.tasks import TASKS, DataError, TaskData


@dataclass(frozen=True)
class Prepared:
    """An experiment whose data is loaded and checked: what the search and the export need."""

    exp: Experiment
    data: TaskData
    metric: str
    mode: str
    plan: object = None  # orchestrator.search.budget.Plan, when the search was sized to a budget
    # Options of the search that are not experiment keys (`orchestrator.run`'s): a Tune stop condition besides
    # max_epochs and the time budget (a `ray.tune.Stopper`, or a function (trial_id, result) -> bool that ends a
    # trial), and the share of random trials before TPE models (None: the searchers' default).
    stop: Any = None
    startup_fraction: Optional[float] = None
    # The task's baselines on validation and test (`trainables.baselines`), computed once when a new run starts
    # (not for validate, resume or export): the yardstick the summary, `best` and the report show the result beside
    # (the run's baselines.json).
    baselines: dict = field(default_factory=dict)
    # What validation found and lets through, for the header and `validate` to say (a family that cannot run some
    # of its combinations).
    warnings: tuple[str, ...] = ()


def resolve_data_path(config: ExperimentConfig, file: Path) -> ExperimentConfig:
    """`task.data` and the file of `task.loader` (FILE.py:FUNCTION) as absolute paths: relative to the experiment
    file's folder if they exist there, else to the CWD."""
    update = {}
    data = config.task.data
    if data is not None and "://" not in data and not Path(data).is_absolute():
        update["data"] = str(_beside(file, data))
    loader = getattr(config.task, "loader", None)
    if loader is not None and ":" in loader:
        loader_file, _, function = loader.rpartition(":")
        update["loader"] = f"{_beside(file, loader_file)}:{function}"
    return config.model_copy(update={"task": config.task.model_copy(update=update)}) if update else config


def _beside(file: Path, path: str) -> Path:
    """`path` beside the experiment file, else in the CWD; a file in neither is named beside the experiment."""
    beside, here = (file.parent / path).resolve(), Path(path).resolve()
    return here if here.exists() and not beside.exists() else beside


def prepare(exp: Experiment) -> Prepared:
    """The task's data, loaded and preprocessed once, checked against the space, with the metric and mode to optimize."""
    exp = replace(exp, config=resolve_data_path(exp.config, exp.file))
    began = time.monotonic()
    try:
        data = TASKS[exp.config.task.kind].load(exp.config.task)
    except DataError as exc:  # its fix told as the user gave the experiment: a file's key, or `--set` for `--data`
        raise UserError(f"{exp.where}: {exc.told(flags=exp.from_flags)}") from None
    if data.prepared and time.monotonic() - began > PREPARED_AFTER_S:
        print(f"data: {data.prepared} (prepared in {time.monotonic() - began:.1f} s, peak memory {_peak_rss()})",
              file=sys.stderr, flush=True)
    data = with_variants(exp, data)
    warnings = check_space_fits(exp, data)
    metric, mode = exp.config.resolved_metric(data.metric)
    allowed = {*data.metrics, C.VAL_LOSS}
    if metric not in allowed:
        raise UserError(
            f"{exp.where}: key 'metric': value '{metric}': task {data.kind} reports {', '.join(sorted(allowed))}"
        )
    return Prepared(exp, data, metric, mode, warnings=tuple(warnings))


def with_variants(exp: Experiment, data: TaskData) -> TaskData:
    """`data` with the task prepared once for each other value of every task option the space searches (`window`)."""
    task, found = exp.config.task, {}
    for key, values in exp.space.task_options().items():
        found[key] = {}
        for value in values:
            if value == getattr(task, key):
                continue
            try:
                found[key][value] = TASKS[task.kind].load(task.model_copy(update={key: value}))
            except DataError as exc:
                raise UserError(f"{exp.space.source}: task.{key}: value {value}: {exc}") from None
    return replace(data, variants=found) if found else data


PREPARED_AFTER_S = 2.0  # data that took longer to prepare is described (what it read, what it weighs, how long)


def _peak_rss() -> str:
    """This process's peak resident memory so far (Linux and macOS report it in different units)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak *= 1 if sys.platform == "darwin" else 1024
    return f"{peak / 1e9:.2f} GB" if peak >= 1e9 else f"{peak / 1e6:.0f} MB"


PROBE_SAMPLES = 32  # sampled combinations per family, besides one per choice option, to tell "never" from "sometimes"


def check_space_fits(exp: Experiment, data: TaskData) -> list[str]:
    """Builds each family's models on this task's data and runs them on a tiny batch: one per choice option of the
    space and PROBE_SAMPLES seeded samples. A family none of whose combinations runs (an import error, a wrong output
    shape, a constructor that always raises, a setting that cannot run the task) is refused now, not in every trial;
    one that runs for some combinations and not others is accepted, with a warning (returned) that gives the share
    that failed and the first error: those trials end `infeasible` and the searcher learns to avoid them."""
    import numpy as np

    from search_spaces.domains import sample_values
    from trainables.models import registry_for
    from trainables.trial import TrialConfig

    families = registry_for(exp.space.models)  # the user's classes, imported once by parsing the space already
    batch = _tiny_batch(data)
    rng = np.random.default_rng(exp.config.seed)
    # (model values, run a batch through it): every choice option is run on the batch (a setting that cannot run the
    # task, a wrong output shape); the seeded samples are only built (their constructors' refusals), which costs
    # little, where a forward pass of each would add seconds to every run's start.
    combos: dict[str, list[tuple[dict, bool]]] = {family: [] for family in exp.space.families}
    for config in exp.space.probes(rng):
        trial = TrialConfig.from_tune(config)
        combos[trial.family].append((trial.model, True))
    for family, sub in exp.space.families.items():
        combos[family] += [(sample_values(sub, rng), False) for _ in range(PROBE_SAMPLES)]
    warnings = []
    for family, values in combos.items():
        distinct = list({repr(sorted(v.items())): (v, run) for v, run in reversed(values)}.values())  # a run probe wins
        problems = [p for v, run in distinct if (p := probe_family(families[family], v, data.spec, batch if run else None))]
        where = f"{exp.space.source}: families.{family}"
        if len(problems) == len(distinct):
            raise UserError(f"{where}: {problems[0]} (task {data.kind})")
        if problems:
            warnings.append(f"{where}: {len(problems)} of {len(distinct)} sampled combinations cannot run (first: {problems[0]}); "
                            "their trials end infeasible, and the searcher learns to avoid them")
    limit = exp.config.limits.max_params
    if limit is not None:
        warnings += _params_over(exp, families, {f: [v for v, _ in values] for f, values in combos.items()}, data.spec, limit)
    return warnings


def _params_over(exp: Experiment, families: dict, combos: dict[str, list[dict]], spec, limit: int) -> list[str]:
    """The share of the sampled combinations whose model has more than `limits.max_params` parameters (the header
    says what the limit removes); a UserError when every combination that builds does."""
    from trainables.footprint import count_params

    sizes = {}
    for family, values in combos.items():
        for v in values:
            try:
                sizes.setdefault(family, []).append(count_params(families[family].build(v, spec)))
            except Exception:  # noqa: BLE001  an infeasible combination: check_space_fits has said so already
                continue
    counted = [n for family_sizes in sizes.values() for n in family_sizes]
    over = [n for n in counted if n > limit]
    if counted and len(over) == len(counted):
        raise UserError(f"{exp.where}: key 'limits.max_params': value {limit}: every sampled model is larger (the smallest "
                        f"has {min(counted):,} parameters); raise the limit or search smaller models")
    if not over:
        return []
    by_family = ", ".join(f"{f} {sum(n > limit for n in ns)} of {len(ns)}" for f, ns in sizes.items() if any(n > limit for n in ns))
    return [f"limits.max_params {limit:,}: {len(over)} of {len(counted)} sampled configurations are larger ({by_family}); "
            "their trials end infeasible before training, and the searcher learns to avoid them"]


def _tiny_batch(data: TaskData):
    """Two training samples as the tensor a model receives."""
    import numpy as np
    import torch

    x = np.ascontiguousarray(data.splits["train"].x[:2])
    return torch.as_tensor(x.astype(np.int64) if x.dtype.kind == "u" else x)  # compact token ids, widened as per batch


def probe_family(family, values: dict, spec, batch) -> str | None:
    """Why `family` with `values` cannot run a task of `spec` (building it, or its output for `batch` unless that is
    None), or None.

    A user's exception is told with their file and line; a built-in's ValueError states its own rule."""
    import torch

    from trainables.models.user import user_error

    user_file = _file_of(family)
    try:
        module = family.build(values, spec).eval()
        if batch is None:
            return None
        with torch.no_grad():
            out = module(batch)
    except ValueError as exc:
        return str(exc) if family.reference is None else user_error(exc, user_file)
    except Exception as exc:  # the user's code may raise anything; told with their file and line
        if family.reference is None:
            raise
        when = "failed to build" if batch is None else f"failed on a batch of shape {tuple(batch.shape)}"
        return f"{family.reference} {when}: {user_error(exc, user_file)}"
    expected = (len(batch), spec.seq_len, spec.out_features) if spec.per_step else (len(batch), spec.out_features)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return (f"forward must return a tensor of shape {expected} for an input of shape {tuple(batch.shape)} "
                f"({_shape_rule(spec)}), but {family.module.__qualname__} returned {got}")
    return None


def _shape_rule(spec) -> str:
    if spec.per_step:
        return "(batch, seq_len, out_features): one prediction per step"
    return "(batch, out_features): one prediction per sample"


def _file_of(family) -> str | None:
    import inspect

    try:
        return inspect.getsourcefile(family.module)
    except TypeError:
        return None


def experiment_from_run(run_dir: Path, *, trackers: bool = True) -> Experiment:
    """The Experiment a run directory was started with (for resume and for exporting an interrupted run; an export,
    which logs nothing, passes trackers=False: the trackers' settings are not checked then)."""
    run = R.read_run(run_dir)
    file = run.run_dir / R.EXPERIMENT_FILE
    config = parse_config(migrate(run.experiment), str(file), trackers=trackers)
    return make_experiment(config, file)


def migrate(resolved: dict) -> dict:
    """A run's experiment.yaml in today's schema. Runs started before schedulers had options of their own
    wrote ASHA's fields for every kind (`fifo` with grace_period and reduction_factor): those are dropped."""
    from orchestrator.search.schedulers import SCHEDULERS

    scheduler = dict(resolved.get("scheduler") or {})
    record = SCHEDULERS.get(scheduler.get("kind", ""))
    if record is not None:
        scheduler = {k: v for k, v in scheduler.items() if k in record.options.model_fields}
    return {**resolved, "scheduler": scheduler}
