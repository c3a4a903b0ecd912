"""A Ray Tune experiment orchestrator for PyTorch RNN / LSTM / GRU / MLP model and hyperparameter search.

The Python API (`orchestrator.run`, `orchestrator.load_run`, `Run`, `RunFailed`, `UserError`) loads on first
use, so that `import orchestrator` stays light: no torch and no Ray until a run is started or a model loaded.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "run": "orchestrator.api",
    "load_run": "orchestrator.api",
    "Run": "orchestrator.api",
    "RunFailed": "orchestrator.api",
    "UserError": "orchestrator.errors",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
