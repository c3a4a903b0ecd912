"""A validated experiment: its config, its search space checked against it, and the points it runs first; made
from a YAML file (`--set` overrides applied), a mapping, or a run directory's resolved experiment."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

from orchestrator.errors import UserError
from orchestrator.experiment.config import ExperimentConfig, parse_config
from orchestrator.experiment.yaml_input import read_yaml, set_override
from orchestrator.search.schedulers import SCHEDULERS
from orchestrator.search.searchers import SEARCHERS
from trainables.models import families_for
from trainables.tasks import TASKS

QUICKSTART = Path(__file__).resolve().parent / "quickstart.yaml"
DATA_LABEL = "--data "  # how the label of an experiment `--data FILE` made begins (`from_data.py`)


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: its config, its parsed search space and the file it came from."""

    config: ExperimentConfig
    space: Any  # search_spaces.SearchSpace
    file: Path  # relative paths in the config are taken from its folder
    label: Optional[str] = None  # what messages name when there is no file (`--data sales.csv`)

    @property
    def where(self) -> str:
        return self.label or str(self.file)

    @property
    def from_flags(self) -> bool:
        """Made by `orchestrator run --data FILE` from flags, with no file to edit: a fix is told as `--set key=value`."""
        return bool(self.label) and self.label.startswith(DATA_LABEL)

    @cached_property
    def first_points(self) -> list[dict[str, Any]]:
        """The Tune configs that run before the searcher's own suggestions: `points_to_evaluate`, then the warm
        start's portfolio points. Computed once per experiment (checked when it is made, `make_experiment`), and
        read by the search and the run's header alike."""
        return check_points(self.config, self.space, self.where)


def make_experiment(config: ExperimentConfig, file: Path, label: Optional[str] = None) -> Experiment:
    """The experiment of a validated config: its space checked against the config, and its first points too."""
    exp = Experiment(config, check_space(config, file, label), file, label)
    exp.first_points  # noqa: B018  (computed now: a bad point is refused before anything runs)
    return exp


def load_experiment(path: str | Path | None, overrides: list[str] = (), *, name: str | None = None, storage: str | None = None) -> Experiment:
    """An experiment from a YAML file (the built-in quickstart when `path` is None), `--set` overrides applied."""
    file = Path(path) if path else QUICKSTART
    return experiment_from_mapping(read_yaml(file), file, overrides, name=name, storage=storage)


def experiment_from_mapping(raw: dict, file: Path, overrides: list[str] = (), *, name: str | None = None,
                            storage: str | None = None, label: Optional[str] = None) -> Experiment:
    """An experiment from a raw mapping read from `file` (or, with `label`, made without one: `--data`)."""
    raw = dict(raw)
    for assignment in overrides:
        set_override(raw, assignment)
    if name is not None:
        raw["name"] = name
    elif "name" not in raw:
        raw["name"] = file.stem
    if storage is not None:
        raw["storage"] = storage
    config = parse_config(raw, label or str(file))
    return make_experiment(config, file, label)


def check_space(config: ExperimentConfig, file: Path, label: Optional[str] = None):
    """Parses the search space (the task's bundled one when the experiment names none) and checks that every
    family in it can run the task and that the searcher can search it."""
    from search_spaces import SpaceError, load_space

    try:
        space = load_space(config.space_ref, base=file.parent, file=file)
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    input_kind = TASKS[config.task.kind].input_kind
    usable = families_for(input_kind) + sorted(space.models)  # a user's family: its probe on the task decides
    # A custom loader's arrays decide its input kind (None here): prepare probes every family on them instead.
    for family in space.families if input_kind is not None else ():
        if family not in usable:
            raise UserError(
                f"{space.source}: families.{family}: model family '{family}' cannot run task '{config.task.kind}' "
                f"(its input is {input_kind}); families for this task: {', '.join(usable)}"
            )
    for key in space.task_options():
        if key not in type(config.task).model_fields:
            raise UserError(f"{space.source}: task.{key}: task '{config.task.kind}' has no option '{key}' to search")
    problem = SEARCHERS[config.searcher].problem(space)
    if problem:
        raise UserError(f"{label or file}: key 'searcher': value '{config.searcher}': {problem}")
    problem = SCHEDULERS[config.scheduler.kind].problem(space)
    if problem:
        raise UserError(f"{label or file}: key 'scheduler.kind': value '{config.scheduler.kind}': {problem}")
    return space


def check_points(config: ExperimentConfig, space, source) -> list[dict[str, Any]]:
    """The experiment's points to evaluate as Tune configs, each checked against the space (key and rule named),
    followed by the warm start's portfolio points for the space (`search_spaces.portfolio`)."""
    from search_spaces import SpaceError
    from search_spaces.points import parse_point, parse_points
    from search_spaces.portfolio import warm_start_points

    takes_points = SEARCHERS[config.searcher].runs_given_points
    if config.points_to_evaluate and not takes_points:
        raise UserError(f"{source}: key 'points_to_evaluate': the {config.searcher} searcher runs its own plan only; "
                        "give points to another searcher")
    if len(config.points_to_evaluate) > config.num_samples:
        raise UserError(f"{source}: key 'points_to_evaluate': {len(config.points_to_evaluate)} points, but num_samples is "
                        f"{config.num_samples}: the points are trials of the search, so at most num_samples")
    try:
        points = parse_points(config.points_to_evaluate, space, str(source))
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    # Moved into the space by construction, so a refusal here is our bug, not the user's: it is not caught.
    portfolio = warm_start_points(space, config.num_samples, len(points)) if config.warm_start == "portfolio" and takes_points else []
    return points + [parse_point(point, space, f"portfolio point {i}") for i, point in enumerate(portfolio)]
