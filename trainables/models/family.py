"""The `Family` record: a model class and the hyperparameters read from its signature.

Every family, built-in or a user's `model: file.py:Class`, is a class built as `Class(spec, **hyperparameters)`;
its hyperparameters are the keyword arguments after `spec`, with their defaults, typed by their hints (int,
float, bool, str, Literal[...]). Reading them from the signature is what keeps a built-in family and a user's
one on the same seam: nothing is declared twice, so nothing can drift.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Literal

REQUIRED = inspect.Parameter.empty
SCALARS = (bool, int, float, str)  # bool first: a bool is an int too


@dataclass(frozen=True)
class Hyperparameter:
    """One keyword argument of a family's class: its name, its type (a scalar type, a tuple of Literal
    options, or None when the hint is none of those) and its default (REQUIRED when it has none)."""

    name: str
    type: Any
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def type_name(self) -> str:
        if isinstance(self.type, tuple):
            return f"Literal[{', '.join(repr(o) for o in self.type)}]"
        return self.type.__name__ if self.type is not None else "any"

    def value_type(self) -> type:
        """The Python type of its values (a Literal's options' type; str when it has no usable hint)."""
        if isinstance(self.type, tuple):
            kinds = {type(o) for o in self.type}
            return kinds.pop() if len(kinds) == 1 else str
        return self.type or str

    def describe(self) -> str:
        return f"{self.name}: {self.type_name()}" + ("" if self.required else f" = {self.default!r}")

    def check(self, value: Any) -> Any:
        """`value` as this hyperparameter's type (an integral float becomes an int), or a ValueError with the rule."""
        kind = self.type
        if isinstance(kind, tuple):
            if value in kind and type(value) in {type(o) for o in kind}:
                return value
            raise ValueError(f"{self.name} must be one of {', '.join(str(o) for o in kind)}, but got {value!r}")
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()  # a numpy scalar from a sampler
        ok = {
            bool: isinstance(value, bool),
            int: isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer(),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            str: isinstance(value, str),
            None: True,
        }[kind]
        if not ok:
            raise ValueError(f"{self.name} must be {'a' if kind is not int else 'an'} {kind.__name__}, but got {value!r}")
        return kind(value) if kind in (int, float) else value


def _hint_type(hint: Any, default: Any) -> Any:
    """A hint as a Hyperparameter type: a scalar type, a tuple of Literal options, or None."""
    if typing.get_origin(hint) is Literal:
        return tuple(typing.get_args(hint))
    if hint in SCALARS:
        return hint
    if hint is REQUIRED and type(default) in SCALARS:
        return type(default)  # no hint: the default's type
    return None


def signature_hyperparameters(cls: type) -> dict[str, Hyperparameter]:
    """The keyword arguments of `cls(spec, ...)` after `spec`, as Hyperparameters; a TypeError when the class
    cannot be called as `cls(spec, **hyperparameters)`."""
    params = list(inspect.signature(cls).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        raise TypeError(f"{cls.__qualname__}.__init__ must take the task's spec as its first argument: {cls.__qualname__}(spec, **hyperparameters)")
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # a hint that names something unimportable at runtime: the raw annotations still say a lot
        hints = {p.name: p.annotation for p in params}
    out = {}
    for p in params[1:]:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue  # *args / **kwargs name no hyperparameter
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"{cls.__qualname__}: argument '{p.name}' is positional-only, so it cannot be passed by name")
        out[p.name] = Hyperparameter(p.name, _hint_type(hints.get(p.name, REQUIRED), p.default), p.default)
    return out


@dataclass(frozen=True)
class Family:
    """A model family: the nn.Module class built as `module(spec, **hyperparameters)`, the input kinds it
    runs (None: any, checked by probing it on the task), one line of description, and where a user's
    class came from (`reference`, "file.py:Class" or "package.module:Class"; None for a built-in)."""

    module: type
    input_kinds: frozenset[str] | None
    description: str
    reference: str | None = None

    def params(self) -> dict[str, Hyperparameter]:
        return signature_hyperparameters(self.module)

    def hyperparameters(self) -> list[str]:
        return list(self.params())

    def make_config(self, values: dict[str, Any]) -> dict[str, Any]:
        """Every hyperparameter's value (defaults for the rest), checked against its type; a ValueError naming
        an unknown name, a missing required one, or a value of the wrong type."""
        params = self.params()
        unknown = sorted(set(values) - set(params))
        if unknown:
            raise ValueError(f"unknown hyperparameter '{unknown[0]}'; known: {', '.join(params)}")
        missing = [n for n, p in params.items() if p.required and n not in values]
        if missing:
            raise ValueError(f"hyperparameter '{missing[0]}' of {self.module.__qualname__} has no default, so the search space must set it")
        return {n: p.check(values[n]) if n in values else p.default for n, p in params.items()}

    def summary(self) -> str:
        """One line for `orchestrator list`: where a user's class is, what it is, its typed hyperparameters."""
        where = f"[{self.reference}] " if self.reference else ""
        return f"{where}{self.description}; hyperparameters: {', '.join(p.describe() for p in self.params().values())}"

    def build(self, values: dict[str, Any], spec) -> Any:
        """A fresh module for `spec` with `values` (defaults for the rest)."""
        return self.module(spec, **self.make_config(values))
