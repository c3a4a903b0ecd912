"""References to a user's model class, as a search space names them: `FILE.py:Class` or `package.module:Class`.

Only text here (no torch, nothing imported): a reader of a finished run parses its space with these alone.
`trainables.models.user` turns a reference into the class.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

MODULE_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_file_ref(ref: Any) -> bool:
    return isinstance(ref, str) and ref.rpartition(":")[0].endswith(".py")


def absolute_ref(ref: Any, bases: Sequence[Path]) -> Any:
    """A `FILE.py:Class` reference with its file made absolute: the first of `bases` (folders) that holds it,
    else the first base; module references and class objects as they are. A run directory stores this
    form, so that resume and export find the file from anywhere."""
    if not is_file_ref(ref):
        return ref
    file, _, name = ref.rpartition(":")
    path = Path(file).expanduser()
    if not path.is_absolute():
        candidates = [Path(b) / path for b in bases] or [Path.cwd() / path]
        path = next((c for c in candidates if c.exists()), candidates[0])
    return f"{path.resolve()}:{name}"


def describe_ref(ref: Any) -> str:
    """A reference as text: itself, or `module:Class` for a class object."""
    return ref if isinstance(ref, str) else f"{ref.__module__}:{ref.__qualname__}"


def module_of(ref: str) -> str:
    """The module a reference imports by name: a file's stem (what Ray ships it as), or the module path."""
    target = ref.rpartition(":")[0]
    return Path(target).stem if is_file_ref(ref) else target


def plain_refs(value: Any) -> Any:
    """`value` (a search space mapping) with every class in it replaced by its reference text."""
    if isinstance(value, type):
        return describe_ref(value)
    if isinstance(value, dict):
        return {k: plain_refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_refs(v) for v in value]
    return value
