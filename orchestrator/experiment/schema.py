"""The base of every config model (unknown keys are errors, a validated config never changes), and the small
option models an experiment shares with every task and scheduler: resources, checkpoints and deployment limits."""

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    cpu: float = Field(1.0, gt=0, description="CPUs for each trial (for each of its workers, with `workers` above 1)")
    # A one-worker trial trains on one device, so a share above one GPU would hold GPUs no trial uses; a trial
    # that needs more trains on several workers, each with a whole GPU.
    gpu: float = Field(0.0, ge=0, description="each trial's share of one GPU: 1 a whole GPU, 0.25 packs four trials on one")
    workers: int = Field(1, ge=1, description="data-parallel workers per trial (PyTorch DDP), each with `cpu` and `gpu`")

    @field_validator("gpu")
    @classmethod
    def one_device(cls, gpu: float) -> float:
        if gpu > 1:
            raise ValueError(f"a trial's worker trains on one GPU, so its share is at most 1 (0.25 packs four trials on one GPU; "
                             f"`workers: N` trains one trial on N GPUs), but got {gpu:g}")
        return gpu

    @model_validator(mode="after")
    def whole_gpus_for_workers(self) -> "Resources":
        # DDP's NCCL backend runs one process per GPU; two workers sharing one would contend for it and gain nothing.
        if self.workers > 1 and self.gpu not in (0, 1):
            raise ValueError(f"with workers: {self.workers}, each worker takes a whole GPU (gpu: 1) or none (gpu: 0), "
                             f"but got gpu: {self.gpu:g}")
        return self

    def per_trial(self) -> dict[str, float]:
        """What one trial holds in all: its workers' CPUs and GPUs together."""
        return {"CPU": self.cpu * self.workers, "GPU": self.gpu * self.workers}


class CheckpointPolicy(Strict):
    keep: int = Field(2, ge=1, description="best checkpoints kept per trial, ranked by the metric")


class Limits(Strict):
    """Deployment limits: a configuration whose model breaks one is `infeasible`, and the searcher learns it.

    `max_params` is checked when the model is built (no epoch spent); `max_latency_ms`, a forward pass of one
    input in milliseconds (`trainables.footprint`), after the first epoch on the trial's device."""

    max_params: int | None = Field(None, ge=1, description="the most parameters a model may have")
    max_latency_ms: float | None = Field(None, gt=0, description="the longest a prediction of one input may take, in ms")

    def as_dict(self) -> dict[str, float]:
        """The limits that are set, by name (what a trial checks)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}
