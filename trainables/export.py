"""The exported model: one self-describing file, loadable without Ray and used through `load_model`.

The file is a plain dict of tensors, strings and numbers (so `torch.load(..., weights_only=True)` reads
it): the family and its config (a user's class as `module:Class`), the weights, the task's preprocessing
(vocabulary, scalers) and the metrics, enough to rebuild the module and use it on raw data.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from trainables.files import atomic_write
from trainables.models import MODELS, Family, ModelRefError
from trainables.models.user import check_module_class, load_class
from trainables.refs import MODULE_REF, describe_ref, is_file_ref, module_of
from trainables.tasks import TASKS
from trainables.tasks.base import ModelSpec

FORMAT = "torch-orchestrator-model/1"


def save_model(path: str | Path, *, family: str, model_config: dict, train_config: dict, spec: ModelSpec,
               task: str, objective: dict, metric: str, preprocessing: dict, metrics: dict, state_dict: dict,
               families: Mapping[str, Family] | None = None) -> None:
    """Writes the exported model file atomically. `families`: the registry holding a user's family (see
    `trainables.models.registry_for`); its class is recorded as `module:Class`, never as code."""
    _write(path, {**_member(family, model_config, state_dict, families), "train_config": train_config}, spec=spec, task=task,
           objective=objective, metric=metric, preprocessing=preprocessing, metrics=metrics)


ENSEMBLE = "ensemble"  # the family an exported ensemble is recorded as; its members carry their own


def save_ensemble(path: str | Path, *, members: list[dict[str, Any]], weights: list[float], spec: ModelSpec, task: str,
                  objective: dict, metric: str, preprocessing: dict, metrics: dict,
                  families: Mapping[str, Family] | None = None) -> None:
    """Writes an ensemble (`trainables.ensemble`) as one exported model file: each member as a single model's
    family, config, class reference and weights, plus their weights; `load_model` rebuilds it as one module.

    `members`: dicts with "family", "model_config", "state_dict" and "trial_id"."""
    model = {"family": ENSEMBLE, "model_class": None, "model_file": None, "train_config": {}, "state_dict": {},
             "model_config": {"members": [m["family"] for m in members], "weights": [float(w) for w in weights],
                              "trial_ids": [m["trial_id"] for m in members]},
             "members": [{**_member(m["family"], m["model_config"], m["state_dict"], families), "trial_id": m["trial_id"]}
                         for m in members]}
    _write(path, model, spec=spec, task=task, objective=objective, metric=metric, preprocessing=preprocessing, metrics=metrics)


def _member(family: str, model_config: dict, state_dict: dict, families: Mapping[str, Family] | None) -> dict[str, Any]:
    """One model as a file holds it: its family, every config value (defaults included), its class, its weights."""
    record = (families or MODELS)[family]
    return {"family": family, "model_config": record.make_config(model_config), **model_reference(record),
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}}


def _write(path: str | Path, model: dict[str, Any], *, spec: ModelSpec, **task: Any) -> None:
    """The file: its format, the model (or ensemble), and what it needs to read raw data (spec, task, preprocessing)."""
    payload = {"format": FORMAT, **model, "spec": dataclasses.asdict(spec), **task}
    atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def model_reference(record: Family) -> dict[str, str | None]:
    """How an exported model names a user's class: `model_class` as `module:Class` (what `load_model` may import),
    and `model_file`, the file it came from, only to tell the user where to find it (never executed)."""
    if record.reference is None:
        return {"model_class": None, "model_file": None}
    file = record.reference.rpartition(":")[0] if is_file_ref(record.reference) else inspect.getsourcefile(record.module)
    return {"model_class": f"{module_of(record.reference)}:{record.module.__qualname__}", "model_file": file}


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
        tabular: `rows` is (F,) or (N, F) raw feature values (text columns as text, or a DataFrame) -> class
        labels as written in the file, or values for regression.
        custom: `rows` is one raw input or a batch, shaped as the loader's x -> class labels (the loader's
        classes), or values in the targets' units.
        """
        if self.task not in TASKS:
            raise ValueError(f"this model is for task {self.task!r}, which this version does not know; known: {', '.join(TASKS)}")
        task = TASKS[self.task]
        if task.predict is None:
            usable = ", ".join(name for name, t in TASKS.items() if t.predict is not None)
            raise ValueError(f"predict is for {usable} models; use sample_text for {self.task!r}")
        return task.predict(self, rows)

    @torch.no_grad()
    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The module's raw outputs for inputs already preprocessed as in training (what `predict` builds on)."""
        device = next(self.module.parameters()).device
        return self.module(torch.from_numpy(x).to(device)).cpu().numpy()


def load_model(path: str | Path, device: str | torch.device = "cpu", *, model_class: type | None = None,
               trust_code: bool = False) -> ExportedModel:
    """Loads an exported model file into a ready `nn.Module` (eval mode), without Ray.

    The file holds tensors and plain values only (`weights_only=True`). A model of your own class names it as
    `module:Class`: pass the class (`model_class=Conv`), or `trust_code=True` to import that module, which
    runs its code: a file from someone else can name any module, so nothing outside this package is imported
    without one of the two. Whatever is named, only a torch.nn.Module subclass is ever called. A built-in
    family's model needs neither (`model_class` is for a file that names a class of yours, and only then used).
    """
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an exported model (expected format {FORMAT!r})")
    spec = ModelSpec(**payload["spec"])
    if payload.get("members"):
        module = _ensemble_of(payload, spec, path, model_class, trust_code)
    else:
        record = _family_of(payload, path, model_class, trust_code)
        module = record.build(payload["model_config"], spec)
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


def _ensemble_of(payload: dict, spec: ModelSpec, path, model_class: type | None, trust_code: bool) -> nn.Module:
    """An exported ensemble rebuilt: every member by the rules of a single model (each class checked), then combined."""
    from trainables.ensemble import Ensemble
    from trainables.objectives import Objective

    modules = []
    for member in payload["members"]:
        module = _family_of(member, path, model_class, trust_code).build(member["model_config"], spec)
        module.load_state_dict(member["state_dict"])
        modules.append(module)
    return Ensemble(modules, payload["model_config"]["weights"], Objective(payload["objective"]).classification)


def _family_of(payload: dict, path, model_class: type | None, trust_code: bool) -> Family:
    """The family record that rebuilds the model: a built-in, or the user's class by the rules of `load_model`."""
    ref = payload.get("model_class")
    if model_class is not None and ref is not None:
        return Family(check_module_class(model_class, describe_ref(model_class)), None, "", describe_ref(model_class))
    if ref is None:
        if payload["family"] not in MODELS:
            raise ValueError(f"{path}: family {payload['family']!r} is not a built-in one ({', '.join(MODELS)}) and the file names no class")
        return MODELS[payload["family"]]
    # `evil.py:Evil` would pass the pattern as module `evil.py` (package `evil`): a file is never a module here.
    if not isinstance(ref, str) or not MODULE_REF.match(ref) or is_file_ref(ref):
        raise ValueError(f"{path}: the model's class is recorded as {ref!r}, which is not a module:Class reference; a path "
                         "in a model file is never executed. Pass the class: load_model(path, model_class=YourClass)")
    module_name, _, name = ref.partition(":")
    ours = module_name == "trainables" or module_name.startswith("trainables.")
    if not (ours or trust_code):
        raise ValueError(f"{path}: this model is an instance of {ref}, code from outside this package, and importing it would "
                         f"run that code. Pass the class: load_model(path, model_class={name.split('.')[-1]}), or "
                         f"trust_code=True to import '{module_name}' if you trust where this file came from")
    try:
        cls = load_class(ref, by_name=True)
    except ModelRefError as exc:
        where = f" (it was trained from {payload.get('model_file')})" if payload.get("model_file") else ""
        hint = "put its folder on sys.path, or pass" if "no module named" in str(exc) else "pass"
        raise ValueError(f"{path}: cannot use class {ref}{where}: {exc}; {hint} the class: "
                         f"load_model(path, model_class={name.split('.')[-1]})") from None
    return Family(cls, None, "", ref)


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
