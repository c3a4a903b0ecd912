"""Reading an experiment's YAML and applying `--set key=value` overrides: raw mappings in, raw mappings out.

Safe YAML only (nothing in a file is evaluated); every problem is a one-line UserError naming the file or flag.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.errors import UserError


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
        raise UserError(f"{path}: the file is empty; an experiment needs at least 'task'")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: an experiment must be a mapping of keys, but the file holds a {type(raw).__name__}")
    return raw
