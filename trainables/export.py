"""The exported model: one self-describing file, loadable without Ray and used through `load_model`.

The file is a plain dict of tensors, strings and numbers (so `torch.load(..., weights_only=True)` reads
it): the family and its config, the weights, the task's preprocessing (vocabulary, scalers) and the
metrics, enough to rebuild the module and use it on raw data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.files import atomic_write
from trainables.models import MODELS, build_model
from trainables.tasks import TASKS
from trainables.tasks.base import ModelSpec

FORMAT = "torch-orchestrator-model/1"


def save_model(path: str | Path, *, family: str, model_config: dict, train_config: dict, spec: ModelSpec,
               task: str, objective: dict, metric: str, preprocessing: dict, metrics: dict, state_dict: dict) -> None:
    """Writes the exported model file atomically."""
    config = dataclasses.asdict(MODELS[family].make_config(model_config))  # every value, defaults included
    payload = {
        "format": FORMAT,
        "family": family,
        "model_config": config,
        "train_config": train_config,
        "spec": dataclasses.asdict(spec),
        "task": task,
        "objective": objective,
        "metric": metric,
        "preprocessing": preprocessing,
        "metrics": metrics,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }
    atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


@dataclass
class ExportedModel:
    """A trained model ready to use: the module (in eval mode) and what it needs to read raw inputs."""

    module: nn.Module
    family: str
    model_config: dict[str, Any]
    spec: ModelSpec
    task: str
    metric: str
    metrics: dict[str, float]
    preprocessing: dict[str, Any]
    objective: dict[str, Any]

    def predict(self, rows) -> np.ndarray:
        """Predictions in the data's own units from raw `rows`, by the task's `predict` (trainables/tasks/<task>.py).

        forecast: `rows` is (T, F) or (N, T, F) raw values of the task's columns -> next values of the targets.
        tabular: `rows` is (F,) or (N, F) raw feature values -> class labels, or values for regression.
        """
        if self.task not in TASKS:
            raise ValueError(f"this model is for task {self.task!r}, which this version does not know; known: {', '.join(TASKS)}")
        task = TASKS[self.task]
        if task.predict is None:
            usable = " and ".join(name for name, t in TASKS.items() if t.predict is not None)
            raise ValueError(f"predict is for {usable} models; use sample_text for {self.task!r}")
        return task.predict(self, rows)

    @torch.no_grad()
    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The module's raw outputs for inputs already preprocessed as in training (what `predict` builds on)."""
        device = next(self.module.parameters()).device
        return self.module(torch.from_numpy(x).to(device)).cpu().numpy()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ExportedModel:
    """Loads an exported model file into a ready `nn.Module` (eval mode), without Ray."""
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an exported model (expected format {FORMAT!r})")
    spec = ModelSpec(**payload["spec"])
    module = build_model(payload["family"], payload["model_config"], spec)
    module.load_state_dict(payload["state_dict"])
    module.to(device).eval()
    return ExportedModel(
        module=module,
        family=payload["family"],
        model_config=payload["model_config"],
        spec=spec,
        task=payload["task"],
        metric=payload["metric"],
        metrics=payload["metrics"],
        preprocessing=payload["preprocessing"],
        objective=payload["objective"],
    )


@torch.no_grad()
def sample_text(model: ExportedModel, prompt: str = "\n", length: int = 300, *, temperature: float = 0.8, seed: int = 0) -> str:
    """Generates `length` characters after `prompt` from an exported charlm model."""
    if model.task != "charlm":
        raise ValueError(f"sample_text needs a charlm model, but this one is for {model.task!r}")
    if not temperature > 0:
        raise ValueError(f"`temperature > 0` must hold, but got {temperature=}")
    vocab = model.preprocessing["vocab"]
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(prompt) - set(index))
    if unknown:
        raise ValueError(f"prompt has characters the model never saw: {''.join(unknown)!r}")
    window = model.preprocessing["seq_len"]
    device = next(model.module.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = [index[c] for c in prompt] or [0]
    for _ in range(length):
        context = torch.tensor([ids[-window:]], device=device)  # (1, T)
        logits = model.module(context)[0, -1] / temperature  # (V,)
        ids.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)))
    return prompt + "".join(vocab[i] for i in ids[len(prompt) or 1 :])
