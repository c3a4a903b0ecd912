"""The model-family registry: name -> config dataclass and module.

A family contributes nothing else; the training loop, the trainable and the export never ask which
family they hold. The same dict feeds validation, `orchestrator list` and the parametrized tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from trainables.models.mlp import MLP, MLPConfig
from trainables.models.recurrent import GRUConfig, LSTMConfig, RecurrentNet, RNNConfig
from trainables.tasks.base import ModelSpec


@dataclass(frozen=True)
class Family:
    """A model family: its hyperparameters (a frozen dataclass with defaults) and the module they build."""

    config: type
    module: type
    input_kinds: frozenset[str]
    description: str

    def hyperparameters(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.config)]

    def make_config(self, values: dict[str, Any]):
        """The family's config from a (possibly partial) mapping; unknown names are a ValueError naming them."""
        known = self.hyperparameters()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown hyperparameter '{unknown[0]}'; known: {', '.join(known)}")
        return self.config(**values)


SEQUENCES = frozenset({"tokens", "sequence"})

MODELS: dict[str, Family] = {
    "mlp": Family(MLPConfig, MLP, frozenset({"tokens", "sequence", "vector"}), "multilayer perceptron (windowed input for sequences)"),
    "rnn": Family(RNNConfig, RecurrentNet, SEQUENCES, "Elman recurrent network"),
    "lstm": Family(LSTMConfig, RecurrentNet, SEQUENCES, "long short-term memory network"),
    "gru": Family(GRUConfig, RecurrentNet, SEQUENCES, "gated recurrent unit network"),
}


def build_model(family: str, values: dict[str, Any], spec: ModelSpec) -> nn.Module:
    """A fresh module of `family` with hyperparameters `values` (defaults for the rest) for a task's spec."""
    entry = MODELS[family]
    return entry.module(entry.make_config(values), spec)


def families_for(input_kind: str) -> list[str]:
    return sorted(name for name, fam in MODELS.items() if input_kind in fam.input_kinds)


__all__ = ["MODELS", "Family", "build_model", "families_for"]
