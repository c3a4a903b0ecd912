"""A parsed search space, and the parser that checks a YAML mapping against the model-family registry.

The space is library-neutral: it samples (random search), enumerates (grid search) and probes itself; the
HyperOpt and Optuna translations read it from outside. Configs come out in Tune's shape through
`trainables.trial.TrialConfig.to_tune`, the one place that knows that shape. Nothing here imports torch:
the family registry (`trainables.models.MODELS`, which does) is imported only when a space is checked,
so a reader of a finished run parses its space with `SearchSpace.from_run` and stays torch-free.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from search_spaces.domains import (
    Domain,
    SpaceError,
    combination_count,
    combinations,
    sample_values,
)
from search_spaces.sections import parse_family, parse_task, parse_train
from trainables.refs import absolute_ref, describe_ref, is_file_ref
from trainables.trial import (
    FAMILY,
    MODEL_PREFIX,
    TASK_KEYS,
    TRAIN_KEYS,
    TrainConfig,
    TrialConfig,
)

SPACES_DIR = Path(__file__).resolve().parent
BUNDLED = {p.stem: p for p in sorted(SPACES_DIR.glob("*.yaml"))}

__all__ = ["BUNDLED", "SearchSpace", "SpaceError", "load_space", "parse_space"]


def _expand(values: dict[str, Any], rng) -> list[dict[str, Any]]:
    """Every combination of the grid domains in `values`; other domains sampled once per combination."""
    keys = [k for k, v in values.items() if isinstance(v, Domain) and v.grid]
    combos = itertools.product(*(values[k].options for k in keys))
    return [{**sample_values(values, rng), **dict(zip(keys, combo))} for combo in combos]


def _grid_count(values: dict[str, Any]) -> int:
    """How many combinations `_expand(values)` gives."""
    return math.prod(len(v.options) for v in values.values() if isinstance(v, Domain) and v.grid)


@dataclass(frozen=True)
class SearchSpace:
    """A parsed space: per-family sub-spaces (the conditional choice) and shared training values.

    `families` maps a family name to {hyperparameter: Domain or constant}; `train` maps training keys the
    same way, and the searched task options of the space's `task:` section (`TASK_KEYS`: forecast's `window`),
    which every translation samples as it samples a shared training value; `source` (a file name) prefixes errors; `raw` is the mapping it was parsed from (a user's file
    made absolute), which a run directory stores so that `from_run` can parse it again; `models` maps each
    user's family to its `model:` reference (`/abs/my_models.py:Conv`, `package.module:Class`, or a class).
    """

    families: dict[str, dict[str, Any]]
    train: dict[str, Any]
    source: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    models: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run(cls, mapping: Any, source: str = "search_space (run)") -> "SearchSpace":
        """A space that was checked when its run started (read back from the run directory), parsed without
        the family registry: no torch import, and a run stays readable after a family changes."""
        return parse_space(mapping, source, check=False)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One random Tune config (uniform over families, then over each domain)."""
        names = list(self.families)
        # Drawn even for a single family: the benchmark's "fixed" configs replay this exact sequence.
        family = names[int(rng.integers(len(names)))]
        return TrialConfig.to_tune(family, sample_values(self.families[family], rng), sample_values(self.train, rng))

    def grid(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Every Tune config of the grid: families x their grid values x the shared grid values."""
        return [
            TrialConfig.to_tune(family, model, train)
            for family, sub in self.families.items()
            for model in _expand(sub, rng)
            for train in _expand(self.train, rng)
        ]

    def grid_size(self, seed: int | None = None) -> int:
        """len(self.grid(rng)), counted without drawing: it depends on the grid domains only, not on `seed`
        (accepted so that callers can pass the run's seed as they do to `grid`)."""
        return sum(_grid_count(sub) for sub in self.families.values()) * _grid_count(self.train)

    def distinct_count(self) -> int | None:
        """How many distinct configurations the space has (per family, its combinations with the training values);
        None when a domain is continuous."""
        counts = [combination_count({**sub, **self.train}) for sub in self.families.values()]
        return None if None in counts else sum(counts)

    def configurations(self, limit: int = 10_000) -> list[dict[str, Any]] | None:
        """Every distinct Tune config of a finite space of at most `limit` configurations, in a fixed order; None
        otherwise."""
        count = self.distinct_count()
        if count is None or count > limit:
            return None
        return [TrialConfig.to_tune(family, {k: v[k] for k in sub}, {k: v[k] for k in self.train})
                for family, sub in self.families.items() for v in combinations({**sub, **self.train})]

    def has_grid(self) -> bool:
        """Whether the grid searcher has something to enumerate: a grid domain, or more than one family."""
        domains = [v for sub in [*self.families.values(), self.train] for v in sub.values()]
        return any(isinstance(v, Domain) and v.grid for v in domains) or len(self.families) > 1

    def probes(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Tune configs that together use every option of every choice of every family (to check a space against a task)."""
        configs = []
        for family, sub in self.families.items():
            model, train = sample_values(sub, rng), sample_values(self.train, rng)
            configs.append(TrialConfig.to_tune(family, model, train))
            for key, domain in sub.items():
                for option in getattr(domain, "options", ()):
                    configs.append(TrialConfig.to_tune(family, {**model, key: option}, train))
        return configs

    def hparam_names(self) -> list[str]:
        """Every flat hyperparameter name a trial of this space can have (union over families)."""
        names = {FAMILY} | {f"{MODEL_PREFIX}{k}" for sub in self.families.values() for k in sub} | set(TRAIN_KEYS)
        return sorted(names | set(self.task_options()))

    def task_options(self) -> dict[str, list[Any]]:
        """{task option: every value the space can draw for it} of its `task:` section (each a choice or a constant)."""
        return {k: list(getattr(d, "options", [d])) for k, d in self.train.items() if k in TASK_KEYS}

    def model_files(self) -> list[str]:
        """The user's model files (absolute paths), what a cluster's workers need shipped to them."""
        return sorted({ref.rpartition(":")[0] for ref in self.models.values() if is_file_ref(ref)})

    def log_scaled(self) -> set[str]:
        """Flat hyperparameter names (`model/hidden_size`, `lr`) that the space samples on a log scale."""
        names = {k for k, d in self.train.items() if isinstance(d, Domain) and d.log}
        for sub in self.families.values():
            names |= {f"{MODEL_PREFIX}{k}" for k, d in sub.items() if isinstance(d, Domain) and d.log}
        return names


def _default_families() -> Mapping[str, Any]:
    # Imported here, not at the top: the registry imports torch, which readers of finished runs avoid.
    from trainables.models import MODELS

    return MODELS


def parse_space(mapping: Any, source: str, *, families: Mapping[str, Any] | None = None, check: bool = True,
                bases: list[Path] | None = None) -> SearchSpace:
    """Validates and parses a space mapping; `source` (a file name) prefixes every error.

    `families`: the family registry (name -> record with `.hyperparameters()` and `.make_config(values)`);
    by default `trainables.models.MODELS`. A family with a `model:` key is the user's class it names
    (`FILE.py:Class`, relative to the first folder of `bases` that holds it, or `package.module:Class`),
    added to the registry. With `check=False` only the structure and the domains are parsed (no registry, no
    training keys, no sample checks, no user file imported): for spaces already checked, via `from_run`.
    """
    registry = (families if families is not None else _default_families()) if check else None
    families_section = _families_section(mapping, source, registry)
    models, families_section = _split_models(families_section, source, bases or [])
    if registry is not None and models:
        written = {f: mapping["families"][f]["model"] for f in models}  # errors quote what the user wrote
        registry = _with_user_families(registry, models, written, source)
    parsed = {family: parse_family(family, sub, source, registry) for family, sub in families_section.items()}
    raw = {**mapping, "families": {f: ({**sub, "model": describe_ref(models[f])} if f in models else sub)
                                   for f, sub in mapping["families"].items()}} if models else mapping
    shared = {**parse_train(mapping.get("train"), source, check), **parse_task(mapping.get("task"), source)}
    space = SearchSpace(parsed, shared, source, raw, models)
    if registry is not None:
        _check_values(space, registry)
    return space


def _families_section(mapping: Any, source: str, registry: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `families` section of a space mapping, with the mapping's shape checked."""
    if not isinstance(mapping, dict):
        raise SpaceError(f"{source}: a search space must be a mapping with 'families' and 'train', but got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - {"families", "train", "task"})
    if unknown:
        raise SpaceError(f"{source}: unknown key '{unknown[0]}'; a search space has 'families', 'train' and 'task'")
    families = mapping.get("families")
    if not isinstance(families, dict) or not families:
        known = f"; known families: {', '.join(sorted(registry))}" if registry is not None else ""
        raise SpaceError(f"{source}: families: must map at least one model family to its sub-space{known}")
    return families


def _split_models(section: dict[str, Any], source: str, bases: list[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """({family: its `model:` reference, a file made absolute}, the families' sub-spaces without `model`)."""
    models, rest = {}, {}
    for family, sub in section.items():
        if isinstance(sub, dict) and "model" in sub:
            ref = sub["model"]
            if not (isinstance(ref, str) and ":" in ref) and not isinstance(ref, type):
                raise SpaceError(f"{source}: families.{family}.model: value {ref!r}: must be FILE.py:Class (relative to the "
                                 "experiment file) or package.module:Class")
            models[family] = absolute_ref(ref, bases)
            sub = {k: v for k, v in sub.items() if k != "model"}
        rest[family] = sub
    return models, rest


def _with_user_families(registry: Mapping[str, Any], models: dict[str, Any], written: dict[str, Any], source: str) -> dict[str, Any]:
    """`registry` plus the user's families; an error names the family's `model` key and the reference as written."""
    from trainables.models import ModelRefError
    from trainables.models.user import user_family

    out = dict(registry)
    for family, ref in models.items():
        where = f"{source}: families.{family}.model: value '{describe_ref(written[family])}'"
        if family in registry:
            raise SpaceError(f"{where}: '{family}' is a built-in family; give your model another name")
        try:
            out[family] = user_family(ref)
        except ModelRefError as exc:
            raise SpaceError(f"{where}: {exc}") from None
    return out


def _check_values(space: SearchSpace, registry: Mapping[str, Any]) -> None:
    """Builds the configs that a few samples give, so that a bad option (an unknown optimizer) fails now."""
    rng = np.random.default_rng(0)
    for family, sub in space.families.items():
        for _ in range(8):
            try:
                registry[family].make_config(sample_values(sub, rng))
            except (TypeError, ValueError) as exc:
                raise SpaceError(f"{space.source}: families.{family}: {exc}") from None
    for _ in range(8):
        try:
            TrainConfig(**{k: v for k, v in sample_values(space.train, rng).items() if k in TRAIN_KEYS})
        except (TypeError, ValueError) as exc:
            raise SpaceError(f"{space.source}: train: {exc}") from None


def load_space(ref: Any, *, base: Path | None = None, families: Mapping[str, Any] | None = None,
               file: Path | None = None) -> SearchSpace:
    """A checked space from a bundled name (`charlm`), a YAML path (relative to `base`), or an inline mapping.

    `families`: the family registry to check against (see `parse_space`); `file`: the experiment file that
    holds an inline mapping, named by its errors.
    """
    if isinstance(ref, dict):
        source = f"{file}: search_space (inline)" if file else "search_space (inline)"
        return parse_space(ref, source, families=families, bases=[base] if base else [])
    path = _space_file(ref, base)
    # `model: FILE.py:Class` is relative to the experiment file; a space file elsewhere may also hold it beside itself.
    return parse_space(_read_yaml(path), str(path), families=families, bases=[b for b in (base, path.parent) if b])


def _space_file(ref: Any, base: Path | None) -> Path:
    """The YAML file a space reference names: a bundled space, or a path (tried relative to `base` too)."""
    if not isinstance(ref, str) or not ref:
        raise SpaceError(f"search_space: must be a bundled name ({', '.join(BUNDLED)}), a YAML path or a mapping, but got {ref!r}")
    if ref in BUNDLED:
        return BUNDLED[ref]
    path = Path(ref).expanduser()
    if not path.is_absolute() and base is not None and not path.exists():
        path = base / path
    if not path.is_file():
        raise SpaceError(f"search_space: '{ref}' is neither a bundled space ({', '.join(BUNDLED)}) nor an existing file")
    return path


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpaceError(f"{path}: cannot read as YAML: {exc}") from None
