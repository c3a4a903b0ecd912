"""The model-family registry: name -> `Family` record (a class built as `Class(spec, **hyperparameters)`).

A family contributes nothing else; the training loop, the trainable and the export never ask which
family they hold. The same dict feeds validation, `orchestrator list` and the parametrized tests. A user's
class (`model: my_models.py:Conv` in a search space) becomes a record of the same kind through
`registry_for`, so it gets everything a built-in family gets.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from trainables.models.family import Family, Hyperparameter
from trainables.models.mlp import MLP
from trainables.models.recurrent import GRU, LSTM, RNN
from trainables.models.transformer import Transformer
from trainables.models.user import ModelRefError, user_family
from trainables.tasks.base import ModelSpec

SEQUENCES = frozenset({"tokens", "sequence"})

MODELS: dict[str, Family] = {
    "mlp": Family(MLP, frozenset({"tokens", "sequence", "vector"}), "multilayer perceptron (windowed input for sequences)"),
    "rnn": Family(RNN, SEQUENCES, "Elman recurrent network"),
    "lstm": Family(LSTM, SEQUENCES, "long short-term memory network"),
    "gru": Family(GRU, SEQUENCES, "gated recurrent unit network"),
    "transformer": Family(Transformer, SEQUENCES, "Transformer: causal decoder for charlm, encoder with pooling otherwise"),
}


def registry_for(models: Mapping[str, Any], *, by_name: bool = False) -> dict[str, Family]:
    """The built-in families plus the user's (family name -> `model:` reference or class); a ModelRefError
    (prefixed with the family's name) for a reference that cannot be used. `by_name`: see `user.load_class`."""
    registry = dict(MODELS)
    for name, ref in models.items():
        if name in MODELS:
            raise ModelRefError(f"{name}: '{name}' is a built-in family; give your model another name")
        try:
            registry[name] = user_family(ref, by_name=by_name)
        except ModelRefError as exc:
            raise ModelRefError(f"{name}: {exc}") from None
    return registry


def build_model(family: str, values: dict[str, Any], spec: ModelSpec, families: Mapping[str, Family] | None = None) -> nn.Module:
    """A fresh module of `family` with hyperparameters `values` (defaults for the rest) for a task's spec;
    `families`: a registry with the user's families (`registry_for`), the built-ins by default."""
    return (families or MODELS)[family].build(values, spec)


def families_for(input_kind: str, families: Mapping[str, Family] | None = None) -> list[str]:
    """The families that can run a task's input kind (a user's family: any, its probe decides)."""
    registry = families or MODELS
    return sorted(name for name, fam in registry.items() if fam.input_kinds is None or input_kind in fam.input_kinds)


__all__ = ["MODELS", "Family", "Hyperparameter", "ModelRefError", "build_model", "families_for", "registry_for"]
