"""A multilayer perceptron for every task: tokens see a causal window of the last `context` characters
(averaged over the sequence when a task predicts once per sequence), sequences are flattened over their
window, tabular rows are used as they are."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from trainables.tasks.base import ModelSpec

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class MLP(nn.Module):
    def __init__(
        self,
        spec: ModelSpec,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        activation: Literal["relu", "gelu", "tanh", "silu"] = "relu",
        context: int = 8,  # characters seen per prediction (charlm only)
        embed_dim: int = 32,  # character embedding width (charlm only)
    ):
        super().__init__()
        if num_layers < 1 or hidden_size < 1 or context < 1:
            raise ValueError(f"num_layers, hidden_size and context must be >= 1, but got {num_layers=}, {hidden_size=}, {context=}")
        self.kind, self.context = spec.input_kind, context
        # Tokens with one prediction per sequence (text classification): the windows' features are averaged
        # over the sequence, a bag of character n-grams, before the head.
        self.pool = spec.input_kind == "tokens" and not spec.per_step
        if spec.input_kind == "tokens":
            self.embed = nn.Embedding(spec.in_features, embed_dim)
            width = context * embed_dim
        else:
            self.embed = None
            width = spec.in_features * (spec.seq_len if spec.input_kind == "sequence" else 1)
        layers: list[nn.Module] = []
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = hidden_size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, spec.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            e = self.embed(x)  # (B, T, E)
            # Left-pad so position t sees characters t-k+1..t and never a later one.
            e = F.pad(e, (0, 0, self.context - 1, 0))  # (B, T+k-1, E)
            z = e.unfold(1, self.context, 1)  # (B, T, E, k)
            z = z.transpose(2, 3).flatten(2)  # (B, T, k*E)
        elif self.kind == "sequence":
            z = x.flatten(1)  # (B, T*F)
        else:
            z = x  # (B, F)
        h = self.body(z)  # (B, T, H) for tokens, (B, H) otherwise
        return self.head(h.mean(1) if self.pool else h)
