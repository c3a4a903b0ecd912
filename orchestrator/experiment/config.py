"""The experiment config: YAML in, a validated, frozen `ExperimentConfig` out.

Every rule lives in the pydantic models below; errors are rewritten into one line that names the file,
the key, the bad value and the rule, and nothing is written for a rejected config.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from orchestrator.errors import UserError
from orchestrator.experiment.schema import CheckpointPolicy, Limits, Resources, Strict
from orchestrator.search.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from orchestrator.search.searchers import DEFAULT_SEARCHER, SEARCHERS
from trainables.refs import plain_refs
from trainables.tasks import TASKS, metric_modes

NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# Each task's and each scheduler's options model lives beside its record (trainables/tasks/<kind>.py,
# orchestrator/search/schedulers/__init__.py); the unions, discriminated by `kind`, are built from the registries.
TASK_OPTIONS = {name: task.options for name, task in TASKS.items()}
TaskOptions = Annotated[Union[tuple(TASK_OPTIONS.values())], Field(discriminator="kind")]
SCHEDULER_OPTIONS = {name: record.options for name, record in SCHEDULERS.items()}
SchedulerOptions = Annotated[Union[tuple(SCHEDULER_OPTIONS.values())], Field(discriminator="kind")]
# key -> (its kinds' option models, what a kind is called in messages, the registry listing the known kinds)
DISCRIMINATED = {"task": (TASK_OPTIONS, "task"), "scheduler": (SCHEDULER_OPTIONS, "scheduler")}


class ExperimentConfig(Strict):
    name: str = "experiment"
    task: TaskOptions
    search_space: Optional[Union[str, dict[str, Any]]] = Field(
        None, description="bundled space name, YAML path, or inline mapping; the task's bundled space when absent")
    searcher: str = DEFAULT_SEARCHER
    scheduler: SchedulerOptions = SCHEDULER_OPTIONS[DEFAULT_SCHEDULER]()
    num_samples: int = Field(16, ge=1)
    max_concurrent: Optional[int] = Field(None, ge=1, description="trials at once; as many as the CPUs/GPUs allow when absent")
    resources: Resources = Resources()
    checkpoint: CheckpointPolicy = CheckpointPolicy()
    metric: Optional[str] = None
    mode: Optional[Literal["min", "max"]] = None
    seed: int = 0
    storage: str = "runs"
    time_budget_s: Optional[float] = Field(None, gt=0)
    budget: Optional[Union[str, float]] = Field(None, description="plan the search to end within this (90s, 10m, 2h)")
    max_failures: int = Field(1, ge=0, description="retries of a crashed trial from its last checkpoint")
    points_to_evaluate: list[dict[str, Any]] = Field(
        default_factory=list, description="flat configurations (family, hyperparameters) run first; the searcher learns from them")
    loggers: list[str] = Field(default_factory=list, description="experiment trackers, one run per trial: mlflow, wandb")
    limits: Limits = Limits()
    ensemble: Optional[int] = Field(None, ge=1, le=50, description="build a weighted ensemble of up to this many top trials "
                                    "at the end of the run (greedy ensemble selection on validation)")
    warm_start: Literal["portfolio", "none"] = Field(  # search_spaces.portfolio.choices() describes each
        "portfolio", description="portfolio: configurations that did well on the bundled tasks run first (after "
                                 "points_to_evaluate), at most 4 and a quarter of the trials; none: the searcher's own from the start")

    @model_validator(mode="before")
    @classmethod
    def default_scheduler_kind(cls, raw: Any) -> Any:
        """`scheduler: {max_epochs: 5}` means the default scheduler with that option."""
        if isinstance(raw, dict) and isinstance(raw.get("scheduler"), dict) and "kind" not in raw["scheduler"]:
            return {**raw, "scheduler": {**raw["scheduler"], "kind": DEFAULT_SCHEDULER}}
        return raw

    @field_validator("name")
    @classmethod
    def valid_name(cls, v: str) -> str:
        if not NAME_RULE.match(v):
            raise ValueError("must start with a letter or digit and hold only letters, digits, '.', '_' and '-'")
        return v

    @field_validator("loggers")
    @classmethod
    def usable_loggers(cls, v: list[str], info: ValidationInfo) -> list[str]:
        """Known trackers whose extra is installed, and whose settings they will accept (orchestrator/watch/trackers/
        __init__.py states each rule); the settings are not checked for a run only read (`parse_config`'s `trackers`)."""
        from orchestrator.watch.trackers import check_loggers

        return check_loggers(v, info.data.get("storage", ""), environment=(info.context or {}).get("trackers", True))

    @field_validator("searcher")
    @classmethod
    def known_searcher(cls, v: str) -> str:
        if v not in SEARCHERS:
            raise ValueError(f"unknown searcher '{v}'; known: {', '.join(sorted(SEARCHERS))}")
        if SEARCHERS[v].missing():
            raise ValueError(SEARCHERS[v].missing())
        return v

    @field_validator("metric")
    @classmethod
    def known_metric(cls, v: Optional[str]) -> Optional[str]:
        modes = metric_modes()
        if v is not None and v not in modes:
            raise ValueError(f"unknown metric '{v}'; known: {', '.join(sorted(modes))}")
        return v

    @model_validator(mode="after")
    def valid_pairing(self):
        """A scheduler that works only with some searchers (PBT), or a searcher only with some schedulers (BOHB), refuses the others."""
        from orchestrator.search.schedulers import pairing_problem

        problem = pairing_problem(self.searcher, self.scheduler.kind)
        if problem:
            raise ValueError(f"key 'searcher': value '{self.searcher}' with scheduler '{self.scheduler.kind}': {problem}")
        return self

    @field_validator("budget")
    @classmethod
    def valid_budget(cls, v: Optional[Union[str, float]]) -> Optional[Union[str, float]]:
        from orchestrator.search.budget import parse_duration

        if v is not None:
            parse_duration(v)  # its ValueError states the rule
        return v

    @model_validator(mode="after")
    def one_time_limit(self):
        if self.budget is not None and self.time_budget_s is not None:
            raise ValueError("`budget` plans the whole search to a time and `time_budget_s` only stops it: set one, "
                             f"but got budget={self.budget!r} and time_budget_s={self.time_budget_s}")
        return self

    # A model class given from Python (`"model": Conv`) is written as its reference text, `module:Conv`.
    space_as_text = field_serializer("search_space")(lambda self, space: plain_refs(space))

    @property
    def space_ref(self) -> Union[str, dict[str, Any]]:
        """The search space to use: the configured one, or the task's bundled space."""
        return self.search_space if self.search_space is not None else TASKS[self.task.kind].default_space

    def resolved_metric(self, task_metric: str) -> tuple[str, str]:
        """(metric, mode): the configured ones, or the task's metric and its natural direction."""
        metric = self.metric or task_metric
        return metric, self.mode or metric_modes()[metric]


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
        if model is ExperimentConfig and part in DISCRIMINATED:
            options = DISCRIMINATED[part][0]
            if parts and parts[0] in options:
                model = options[parts.pop(0)]
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
    # A discriminated key's location holds the kind (`scheduler.asha.grace`): the user wrote `scheduler.grace`.
    if loc and loc[0] in DISCRIMINATED and len(loc) > 1 and loc[1] in DISCRIMINATED[loc[0]][0]:
        key_loc = (loc[0],) + loc[2:]
    else:
        key_loc = loc
    key = ".".join(str(p) for p in key_loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1])
        known = sorted(owner.model_fields) if owner else []
        return f"{source}: unknown key '{key}'; {_closest(str(loc[-1]), known)}known: {', '.join(known)}"
    if error["type"] == "missing":
        return f"{source}: key '{key}' is required"
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        options, what = DISCRIMINATED[loc[0]]
        kind = error.get("input", {}).get("kind") if isinstance(error.get("input"), dict) else None
        return f"{source}: key '{loc[0]}.kind': value {kind!r}: unknown {what} '{kind}'; known: {', '.join(sorted(options))}"
    message = error["msg"].removeprefix("Value error, ")
    if not loc:  # a rule across keys (a model validator): its message names the keys; the input is the whole file
        return f"{source}: {message}"
    return f"{source}: key '{key}': value {error.get('input')!r}: {message}"


def parse_config(raw: dict, source: str, *, trackers: bool = True) -> ExperimentConfig:
    """Validates a raw mapping; the first problem becomes a UserError naming `source`, the key, the value and the rule.

    `trackers`: whether the trackers' settings (MLFLOW_TRACKING_URI, W&B's key) are checked too: False for a run
    whose experiment is read to export it, which logs nothing."""
    try:
        config = ExperimentConfig.model_validate(raw, context={"trackers": trackers})
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise UserError(_describe(errors[0], source) + more) from None
    return config
