"""Calling a user's data loader, `task.loader: my_data.py:load`: import the file, check the task's options
against the function's parameters, call it once, and report any failure with the user's file and line.

No torch here: the driver loads the data before any trial exists.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from trainables.tasks.base import DataError, Setting


def split_ref(ref: str) -> tuple[Path, str]:
    """(file, function) of `path/to/file.py:function`, refusing any other form."""
    file, sep, name = ref.rpartition(":")
    if not sep or not file.endswith(".py") or not name.isidentifier():
        raise DataError(f"task.loader: value {ref!r}: must be FILE.py:FUNCTION, e.g. my_data.py:load")
    return Path(file), name


def where_in(exc: BaseException, path: Path) -> str:
    """`file, line N, in func: `code`` of the deepest frame of the traceback in the user's file, or ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename}, line {f.lineno}, in {f.name}" + (f": `{f.line.strip()}`" if f.line else "")


def user_failure(exc: BaseException, path: Path, doing: str) -> DataError:
    """A DataError saying what the user's code raised, and where in their file."""
    at = where_in(exc, path)
    return DataError(f"task.loader: {doing} raised {type(exc).__name__}: {exc}" + (f" (at {at})" if at else ""))


def load_function(ref: str) -> tuple[Callable[..., Any], Path]:
    """The user's loader function and its file; a DataError for a missing file or function, or a failing import."""
    path, name = split_ref(ref)
    if not path.is_file():
        raise DataError(f"task.loader: file not found: '{path}'")
    # A module name of its own, so two experiments' `my_data.py` never share a cached module.
    module_name = f"_orchestrator_loader_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module failed: said with their file and line, never swallowed
        sys.modules.pop(module_name, None)
        raise user_failure(exc, path, f"importing '{path}'") from exc
    function = getattr(module, name, None)
    if not callable(function):
        found = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module_name)
        raise DataError(f"task.loader: '{path}' has no function '{name}'; functions there: {', '.join(found) or 'none'}")
    return function, path


def check_options(function: Callable[..., Any], options: dict[str, Any], known: list[str], ref: str) -> None:
    """Refuses options the loader does not take, and typos of the task's own keys (`val_fracton`), which would
    otherwise reach the loader silently when it takes **kwargs."""
    params = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in options:
        if key in named or (key in known and takes_any):
            continue
        if key in known:  # `data`: the one task option the loader receives
            raise DataError(f"task.{key}: {ref} receives it as the keyword argument '{key}', but has no such parameter")
        close = difflib.get_close_matches(key, known + named, n=1, cutoff=0.75)
        if close or not takes_any:
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise DataError(
                f"task.{key}: unknown key: neither a task option nor a parameter of {ref}; {hint}"
                f"task options: {', '.join(sorted(known))}; loader parameters: {', '.join(named) or 'none'}"
            )
    required = [n for n, p in params.items() if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    absent = [n for n in required if n not in options]
    if absent:
        raise DataError(f"task.{absent[0]}: required by {ref} (a parameter without a default)", Setting(f"task.{absent[0]}"))


def call_loader(ref: str, options: dict[str, Any], known: list[str]) -> Any:
    """Imports the loader `ref`, checks `options` against it and calls it once with them as keyword arguments."""
    function, path = load_function(ref)
    check_options(function, options, known, ref)
    try:
        return function(**options)
    except Exception as exc:  # the user's loader failed: said with their file and line, never swallowed
        raise user_failure(exc, path, f"{path.name}:{function.__name__}()") from exc
