"""A user's model class named by a reference: `FILE.py:Class` (a file, relative to the experiment file) or
`package.module:Class` (an importable module), resolved into a `Family` record like the built-ins'.

Errors are `ModelRefError`s whose message states the problem in the user's terms: the file that is missing,
the classes a file does have, and for an exception raised while the user's file is imported, that file and
line (not ours).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any

from trainables.models.family import Family, signature_hyperparameters
from trainables.refs import MODULE_REF, describe_ref, is_file_ref, module_of

_CLASSES: dict[tuple[str, bool], type] = {}  # (reference, by name) -> class, loaded once per process


class ModelRefError(ValueError):
    """A `model:` reference that cannot be used; the message says why and what would work."""


def _user_frame(exc: BaseException, file: str | None) -> str:
    """`FILE, line N` of the deepest frame of `exc` inside the user's file (or the deepest frame outside ours)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = str(Path(__file__).resolve().parent.parent)
    mine = [f for f in frames if file and Path(f.filename).resolve() == Path(file).resolve()]
    theirs = mine or [f for f in frames if not f.filename.startswith(ours) and "importlib" not in f.filename]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}, line {exc.lineno}"
    return f"{theirs[-1].filename}, line {theirs[-1].lineno}" if theirs else (file or "?")


def user_error(exc: BaseException, file: str | None) -> str:
    """An exception raised by the user's code as one line: where in their file, its type and message."""
    return f"{_user_frame(exc, file)}: {type(exc).__name__}: {exc}"


def _load_file(path: Path) -> Any:
    """The module of a user's .py file, loaded under its own name (its folder on sys.path, so that the files
    beside it import as they would when it runs as a script)."""
    if not path.is_file():
        raise ModelRefError(f"file not found: {path}")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == path:
        return loaded
    if loaded is not None or not name.isidentifier():
        name = f"_user_model_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"  # never shadow another module
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it executes
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelRefError(f"importing it failed: {user_error(exc, str(path))}") from None
    return module


def _import_module(name: str) -> Any:
    """An importable module by name; a missing module and an error inside it are told apart."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ModelRefError(f"no module named '{name}' (not installed, and not on the Python path)") from None
        spec = importlib.util.find_spec(name.split(".")[0])
        raise ModelRefError(f"importing it failed: {user_error(exc, spec.origin if spec else None)}") from None
    except Exception as exc:
        spec = importlib.util.find_spec(name)
        raise ModelRefError(f"importing it failed: {user_error(exc, spec.origin if spec else None)}") from None


def check_module_class(obj: Any, ref: str) -> type:
    """`obj` if it is a class derived from torch.nn.Module, checked before anything calls it."""
    from torch import nn

    if not isinstance(obj, type):
        raise ModelRefError(f"'{ref}' is a {type(obj).__name__}, not a class; a model must be a torch.nn.Module subclass")
    if not issubclass(obj, nn.Module):
        raise ModelRefError(f"{obj.__qualname__} is not a torch.nn.Module subclass (its bases: {', '.join(b.__name__ for b in obj.__mro__[1:-1]) or 'object'})")
    return obj


def _class_in(module: Any, name: str, where: str) -> Any:
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            classes = sorted(k for k, v in vars(module).items() if isinstance(v, type) and getattr(v, "__module__", None) == module.__name__)
            raise ModelRefError(f"no class '{name}' in {where}; classes there: {', '.join(classes) or 'none'}")
        obj = getattr(obj, part)
    return obj


def load_class(ref: Any, *, by_name: bool = False) -> type:
    """The nn.Module class a reference names (a class object passes through, checked). `by_name`: import a
    file reference's module by its name rather than from its path (a cluster worker, which received the file
    through Ray's runtime environment)."""
    if isinstance(ref, type):
        return check_module_class(ref, describe_ref(ref))
    if not isinstance(ref, str) or ":" not in ref:
        raise ModelRefError(f"must be FILE.py:Class or package.module:Class, but got {ref!r}")
    key = (ref, by_name)
    if key not in _CLASSES:
        target, _, name = ref.rpartition(":")
        if is_file_ref(ref) and not by_name:
            module, where = _load_file(Path(target)), Path(target).name
        else:
            module_name = module_of(ref)
            if not MODULE_REF.match(f"{module_name}:{name}"):
                raise ModelRefError(f"must be FILE.py:Class or package.module:Class, but got {ref!r}")
            module, where = _import_module(module_name), module_name
        _CLASSES[key] = check_module_class(_class_in(module, name, where), ref)
    return _CLASSES[key]


def user_family(ref: Any, *, by_name: bool = False) -> Family:
    """The Family record of a user's class (its hyperparameters from its signature, checked here)."""
    cls = load_class(ref, by_name=by_name)
    try:
        signature_hyperparameters(cls)
    except (TypeError, ValueError) as exc:
        raise ModelRefError(str(exc)) from None
    doc = (cls.__doc__ or "").strip().splitlines()
    return Family(cls, None, doc[0].rstrip(".") if doc else f"your model {describe_ref(ref)}", describe_ref(ref))
