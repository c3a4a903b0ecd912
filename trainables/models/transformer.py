"""A Transformer over token or feature sequences: a causal decoder for tasks that predict every next step
(charlm), an encoder with pooling for tasks that predict once per sequence (forecast).

Pre-norm blocks (LayerNorm before attention and feed-forward, as GPT-2 and nanoGPT do) train stably with
Adam at the learning rates the bundled spaces search, without warm-up.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from trainables.tasks.base import ModelSpec


def sinusoidal(length: int, width: int) -> torch.Tensor:
    """The fixed positions of "Attention Is All You Need": (length, width), sin on even and cos on odd features."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (T, 1)
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))  # (D/2,)
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table


class Transformer(nn.Module):
    def __init__(
        self,
        spec: ModelSpec,
        num_layers: int = 2,
        d_model: int = 64,
        num_heads: int = 4,
        ff_mult: int = 4,  # feed-forward width = ff_mult * d_model
        dropout: float = 0.1,
        # Sinusoidal by default: on the bundled corpora it reached a lower val_bpc in the first epochs (learned
        # positions start as noise and take epochs to become useful).
        positions: Literal["learned", "sinusoidal"] = "sinusoidal",
        pooling: Literal["mean", "last"] = "mean",  # how a sequence becomes one prediction (not charlm)
    ):
        super().__init__()
        if not spec.is_sequence:
            raise ValueError(f"transformer needs a sequence task (charlm, forecast), but this task's input is {spec.input_kind}")
        if min(num_layers, d_model, num_heads, ff_mult) < 1:
            raise ValueError(f"num_layers, d_model, num_heads and ff_mult must be >= 1, but got {num_layers=}, {d_model=}, {num_heads=}, {ff_mult=}")
        if d_model % num_heads:
            raise ValueError(f"`d_model % num_heads == 0` must hold (each head gets d_model / num_heads features), but got {d_model=}, {num_heads=}")
        self.per_step, self.pooling, self.max_len = spec.per_step, pooling, max(spec.seq_len, 1)
        if spec.input_kind == "tokens":
            self.embed: nn.Module = nn.Embedding(spec.in_features, d_model)
        else:
            self.embed = nn.Linear(spec.in_features, d_model)
        if positions == "learned":
            self.position = nn.Parameter(torch.zeros(self.max_len, d_model))
            nn.init.normal_(self.position, std=0.02)
        else:
            # Not a parameter and not saved: it is a function of the shape alone.
            self.register_buffer("position", sinusoidal(self.max_len, d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, ff_mult * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, spec.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        if steps > self.max_len:
            raise ValueError(f"this transformer was built for sequences of at most {self.max_len} steps, but got {steps}")
        h = self.drop(self.embed(x) + self.position[:steps])  # (B, T, D)
        if self.per_step:
            # Position t attends to 0..t only: a prediction of the next character never sees it.
            mask = nn.Transformer.generate_square_subsequent_mask(steps, device=x.device, dtype=h.dtype)  # (T, T)
            h = self.blocks(h, mask=mask, is_causal=True)
        else:
            h = self.blocks(h)
        h = self.norm(h)  # (B, T, D)
        if not self.per_step:
            h = h.mean(1) if self.pooling == "mean" else h[:, -1]  # (B, D)
        return self.head(h)
