"""Recurrent networks (Elman RNN, LSTM, GRU) over token or feature sequences.

One module serves the three families; each family's config names its cell and carries only the
hyperparameters that cell has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from trainables.tasks.base import ModelSpec

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class RecurrentConfig:
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0  # between stacked layers and before the output layer
    bidirectional: bool = False  # only for tasks that predict once per sequence (not charlm)
    embed_dim: int = 32  # character embedding width (charlm only)
    cell: ClassVar[str] = "lstm"


@dataclass(frozen=True)
class LSTMConfig(RecurrentConfig):
    cell: ClassVar[str] = "lstm"


@dataclass(frozen=True)
class GRUConfig(RecurrentConfig):
    cell: ClassVar[str] = "gru"


@dataclass(frozen=True)
class RNNConfig(RecurrentConfig):
    nonlinearity: str = "tanh"
    cell: ClassVar[str] = "rnn"


class RecurrentNet(nn.Module):
    def __init__(self, cfg: RecurrentConfig, spec: ModelSpec):
        super().__init__()
        if not spec.is_sequence:
            raise ValueError(f"{cfg.cell} needs a sequence task (charlm, forecast), but this task's input is {spec.input_kind}")
        if cfg.bidirectional and spec.per_step:
            raise ValueError(
                f"bidirectional must be false for a task that predicts every next step (it would see the future), but got {cfg.bidirectional}"
            )
        if cfg.num_layers < 1 or cfg.hidden_size < 1:
            raise ValueError(f"num_layers and hidden_size must be >= 1, but got {cfg}")
        self.per_step, self.bidirectional, self.hidden = spec.per_step, cfg.bidirectional, cfg.hidden_size
        self.embed = nn.Embedding(spec.in_features, cfg.embed_dim) if spec.input_kind == "tokens" else None
        extra = {"nonlinearity": cfg.nonlinearity} if isinstance(cfg, RNNConfig) else {}
        self.rnn = CELLS[cfg.cell](
            cfg.embed_dim if self.embed is not None else spec.in_features,
            cfg.hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            bidirectional=cfg.bidirectional,
            **extra,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size * (2 if cfg.bidirectional else 1), spec.out_features)

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
