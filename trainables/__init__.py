"""PyTorch side of the orchestrator: model families, tasks, the training loop and the Ray Tune trainable.

`load_model` (and `sample_text` for charlm) work without Ray: `from trainables import load_model`.
The Ray trainable lives in `trainables.trainable` and is imported only where Ray is used.
"""

from trainables.export import ExportedModel, load_model, sample_text
from trainables.models import MODELS
from trainables.tasks import TASKS

__all__ = ["load_model", "sample_text", "ExportedModel", "MODELS", "TASKS"]
