"""The base of every config model (unknown keys are errors, a validated config never changes), and the small
option models an experiment shares with every task and scheduler: resources and checkpoints."""

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    cpu: float = Field(1.0, gt=0)
    # A trial trains on one device (the training loop is single-device, and these models are far too small to
    # gain from splitting a batch across GPUs), so a share above one GPU would hold GPUs no trial uses.
    gpu: float = Field(0.0, ge=0, description="each trial's share of one GPU: 1 a whole GPU, 0.25 packs four trials on one")

    @field_validator("gpu")
    @classmethod
    def one_device(cls, gpu: float) -> float:
        if gpu > 1:
            raise ValueError(f"a trial trains on one GPU, so its share is at most 1 (0.25 packs four trials on one GPU), but got {gpu:g}")
        return gpu


class CheckpointPolicy(Strict):
    keep: int = Field(2, ge=1, description="best checkpoints kept per trial, ranked by the metric")
