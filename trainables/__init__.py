"""PyTorch side of the orchestrator: model families, tasks, the training loop and the Ray Tune trainable.

`load_model` (and `sample_text` for charlm) work without Ray: `from trainables import load_model`.
The names below load on first use, so that importing a torch-free submodule (`trainables.trial`,
`trainables.constants`) does not import torch: reading a finished run needs neither torch nor Ray.
"""

from importlib import import_module

_LAZY = {
    "load_model": "trainables.export",
    "sample_text": "trainables.export",
    "ExportedModel": "trainables.export",
    "MODELS": "trainables.models",
    "TASKS": "trainables.tasks",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainables' has no attribute {name!r}")
