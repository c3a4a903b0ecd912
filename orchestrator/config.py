"""The experiment config: YAML in, a validated, frozen `ExperimentConfig` out.

Every rule lives in the pydantic models below; errors are rewritten into one line that names the file,
the key, the bad value and the rule, and nothing is written for a rejected config.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import UserError
from orchestrator.strategies import SCHEDULERS, SEARCHERS
from trainables.constants import METRIC_MODES
from trainables.models import families_for
from trainables.tasks import TASKS

QUICKSTART = Path(__file__).resolve().parent / "quickstart.yaml"
NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskBase(Strict):
    data: Optional[str] = Field(None, description="your own data file; the built-in dataset when absent")
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    steps_per_epoch: Optional[int] = Field(None, ge=1, description="cap on training batches per epoch; a full pass when absent")


class CharLMTask(TaskBase):
    kind: Literal["charlm"]
    seq_len: int = Field(64, ge=2, le=4096)
    max_chars: Optional[int] = Field(None, ge=100, description="use only the first max_chars characters of the corpus")


class ForecastTask(TaskBase):
    kind: Literal["forecast"]
    window: int = Field(24, ge=1, description="past steps each forecast sees")
    columns: Optional[list[str]] = Field(None, description="series columns; all but time_column when absent")
    targets: Optional[list[str]] = Field(None, description="columns to forecast; all columns when absent")
    time_column: Optional[str] = None
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)


class TabularTask(TaskBase):
    kind: Literal["tabular"]
    target: Optional[str] = Field(None, description="target column (required with your own data)")
    problem: Literal["auto", "classification", "regression"] = "auto"
    split_seed: int = 0
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)


TASK_OPTIONS = {"charlm": CharLMTask, "forecast": ForecastTask, "tabular": TabularTask}
TaskOptions = Annotated[Union[CharLMTask, ForecastTask, TabularTask], Field(discriminator="kind")]


class SchedulerConfig(Strict):
    kind: str = "asha"
    max_epochs: int = Field(10, ge=1)
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)

    @field_validator("kind")
    @classmethod
    def known_scheduler(cls, v: str) -> str:
        if v not in SCHEDULERS:
            raise ValueError(f"unknown scheduler '{v}'; known: {', '.join(sorted(SCHEDULERS))}")
        return v

    @model_validator(mode="after")
    def grace_within_max(self):
        if self.grace_period > self.max_epochs:
            raise ValueError(f"`grace_period <= max_epochs` must hold, but got ({self.grace_period=}, {self.max_epochs=})")
        return self


class Resources(Strict):
    cpu: float = Field(1.0, gt=0)
    # A trial trains on one device (the training loop is single-device, and these models are far too small to
    # gain from splitting a batch across GPUs), so a share above one GPU would hold GPUs no trial uses.
    gpu: float = Field(0.0, ge=0, description="each trial's share of one GPU: 1 a whole GPU, 0.25 packs four trials on one")

    @field_validator("gpu")
    @classmethod
    def one_device(cls, gpu: float) -> float:
        if gpu > 1:
            raise ValueError(f"a trial trains on one GPU, so its share is at most 1 (0.25 packs four trials on one GPU), but got {gpu:g}")
        return gpu


class CheckpointPolicy(Strict):
    keep: int = Field(2, ge=1, description="best checkpoints kept per trial, ranked by the metric")


class ExperimentConfig(Strict):
    name: str = "experiment"
    task: TaskOptions
    search_space: Union[str, dict[str, Any]] = Field(description="bundled space name, YAML path, or inline mapping")
    searcher: str = "hyperopt"
    scheduler: SchedulerConfig = SchedulerConfig()
    num_samples: int = Field(16, ge=1)
    max_concurrent: Optional[int] = Field(None, ge=1, description="trials at once; as many as the CPUs/GPUs allow when absent")
    resources: Resources = Resources()
    checkpoint: CheckpointPolicy = CheckpointPolicy()
    metric: Optional[str] = None
    mode: Optional[Literal["min", "max"]] = None
    seed: int = 0
    storage: str = "runs"
    time_budget_s: Optional[float] = Field(None, gt=0)
    max_failures: int = Field(1, ge=0, description="retries of a crashed trial from its last checkpoint")

    @field_validator("name")
    @classmethod
    def valid_name(cls, v: str) -> str:
        if not NAME_RULE.match(v):
            raise ValueError("must start with a letter or digit and hold only letters, digits, '.', '_' and '-'")
        return v

    @field_validator("searcher")
    @classmethod
    def known_searcher(cls, v: str) -> str:
        if v not in SEARCHERS:
            raise ValueError(f"unknown searcher '{v}'; known: {', '.join(sorted(SEARCHERS))}")
        return v

    @field_validator("metric")
    @classmethod
    def known_metric(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and v not in METRIC_MODES:
            raise ValueError(f"unknown metric '{v}'; known: {', '.join(sorted(METRIC_MODES))}")
        return v

    def resolved_metric(self, task_metric: str) -> tuple[str, str]:
        """(metric, mode): the configured ones, or the task's metric and its natural direction."""
        metric = self.metric or task_metric
        return metric, self.mode or METRIC_MODES[metric]


def _closest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    # A truncated key (`grace` for `grace_period`) scores low on similarity but is an obvious match.
    match = match or [c for c in choices if word and c.startswith(word)][:1]
    return f"did you mean '{match[0]}'? " if match else ""


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc` (used to list known keys for a typo)."""
    model: Any = ExperimentConfig
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if model is ExperimentConfig and part == "task":
            if parts and parts[0] in TASK_OPTIONS:
                model = TASK_OPTIONS[parts.pop(0)]
                continue
            return None
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return model
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return model
    return model


def _describe(error: dict, source: str) -> str:
    loc = tuple(error["loc"])
    if loc and loc[0] == "task" and len(loc) > 1 and loc[1] in TASK_OPTIONS:
        key_loc = ("task",) + loc[2:]
    else:
        key_loc = loc
    key = ".".join(str(p) for p in key_loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1])
        known = sorted(owner.model_fields) if owner else []
        return f"{source}: unknown key '{key}'; {_closest(str(loc[-1]), known)}known: {', '.join(known)}"
    if error["type"] == "missing":
        return f"{source}: key '{key}' is required"
    if error["type"] == "union_tag_invalid" or error["type"] == "union_tag_not_found":
        return f"{source}: key 'task.kind': value {error.get('input', {}).get('kind') if isinstance(error.get('input'), dict) else None!r}: unknown task; known: {', '.join(sorted(TASKS))}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{source}: key '{key}': value {error.get('input')!r}: {message}"


def set_override(mapping: dict, assignment: str) -> None:
    """Applies one `--set a.b=value` (value parsed as YAML: numbers, booleans, lists) to a raw config mapping."""
    if "=" not in assignment:
        raise UserError(f"--set {assignment!r}: expected key=value, e.g. --set scheduler.max_epochs=5")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"--set {assignment!r}: empty key segment in '{key}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"--set {assignment!r}: value is not valid YAML: {exc}") from None
    node = mapping
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {assignment!r}: '{part}' holds {child!r}, not a mapping")
        node = child
    node[parts[-1]] = value


def read_yaml(path: Path) -> dict:
    """The raw mapping of an experiment file (safe YAML: nothing in it is evaluated)."""
    if not path.is_file():
        raise UserError(f"{path}: experiment file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: malformed YAML: {' '.join(str(exc).split())}") from None
    if raw is None:
        raise UserError(f"{path}: the file is empty; an experiment needs at least 'task' and 'search_space'")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: an experiment must be a mapping of keys, but the file holds a {type(raw).__name__}")
    return raw


def parse_config(raw: dict, source: str) -> ExperimentConfig:
    """Validates a raw mapping; the first problem becomes a UserError naming `source`, the key, the value and the rule."""
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise UserError(_describe(errors[0], source) + more) from None
    return config


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: its config, its parsed search space and the file it came from."""

    config: ExperimentConfig
    space: Any  # search_spaces.SearchSpace
    file: Path


def load_experiment(path: str | Path | None, overrides: list[str] = (), *, name: str | None = None, storage: str | None = None) -> Experiment:
    """An experiment from a YAML file (the built-in quickstart when `path` is None), `--set` overrides applied."""
    file = Path(path) if path else QUICKSTART
    raw = read_yaml(file)
    for assignment in overrides:
        set_override(raw, assignment)
    if name is not None:
        raw["name"] = name
    elif "name" not in raw:
        raw["name"] = file.stem
    if storage is not None:
        raw["storage"] = storage
    config = parse_config(raw, str(file))
    return Experiment(config, check_space(config, file), file)


def check_space(config: ExperimentConfig, file: Path):
    """Parses the search space and checks that every family in it can run the task."""
    from search_spaces import SpaceError, load_space

    try:
        space = load_space(config.search_space, base=file.parent)
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    input_kind = TASKS[config.task.kind].input_kind
    usable = families_for(input_kind)
    for family in space.families:
        if family not in usable:
            raise UserError(
                f"{space.source}: families.{family}: model family '{family}' cannot run task '{config.task.kind}' "
                f"(its input is {input_kind}); families for this task: {', '.join(usable)}"
            )
    if config.searcher == "grid" and not any(
        getattr(v, "grid", False) for sub in [*space.families.values(), space.train] for v in sub.values()
    ) and len(space.families) == 1:
        raise UserError(f"{file}: key 'searcher': value 'grid': the space {space.source} has no grid domains to enumerate")
    return space

