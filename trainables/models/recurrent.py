"""Recurrent networks (Elman RNN, LSTM, GRU) over token or feature sequences.

One body serves the three families; each family's class names its cell, and its signature carries only the
hyperparameters that cell has.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from trainables.tasks.base import ModelSpec

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentNet(nn.Module):
    """The shared body; LSTM, GRU and RNN below name their cell (and RNN adds its nonlinearity)."""

    cell: ClassVar[str] = "lstm"

    def __init__(
        self,
        spec: ModelSpec,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,  # between stacked layers and before the output layer
        bidirectional: bool = False,  # only for tasks that predict once per sequence (not charlm)
        embed_dim: int = 32,  # character embedding width (charlm only)
        **cell_options,
    ):
        super().__init__()
        if not spec.is_sequence:
            raise ValueError(f"{self.cell} needs a sequence task (charlm, forecast), but this task's input is {spec.input_kind}")
        if bidirectional and spec.per_step:
            raise ValueError(
                f"bidirectional must be false for a task that predicts every next step (it would see the future), but got {bidirectional}"
            )
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(f"num_layers and hidden_size must be >= 1, but got {num_layers=}, {hidden_size=}")
        self.per_step, self.bidirectional, self.hidden = spec.per_step, bidirectional, hidden_size
        self.embed = nn.Embedding(spec.in_features, embed_dim) if spec.input_kind == "tokens" else None
        self.rnn = CELLS[self.cell](
            embed_dim if self.embed is not None else spec.in_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            **cell_options,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), spec.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x  # (B, T, E)
        out, _ = self.rnn(h)  # (B, T, H*D)
        if not self.per_step:
            if self.bidirectional:
                # The forward direction ends at the last step, the backward one at the first.
                out = torch.cat([out[:, -1, : self.hidden], out[:, 0, self.hidden :]], dim=-1)  # (B, 2H)
            else:
                out = out[:, -1]  # (B, H)
        return self.head(self.drop(out))


class LSTM(RecurrentNet):
    cell: ClassVar[str] = "lstm"


class GRU(RecurrentNet):
    cell: ClassVar[str] = "gru"


class RNN(RecurrentNet):
    cell: ClassVar[str] = "rnn"

    def __init__(self, spec: ModelSpec, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, embed_dim: int = 32, nonlinearity: Literal["tanh", "relu"] = "tanh"):
        super().__init__(spec, hidden_size, num_layers, dropout, bidirectional, embed_dim, nonlinearity=nonlinearity)
