"""Names shared by the trainable, the orchestrator and the tests: result keys and metric names.

One place, so that a metric is never spelled twice and `min`/`max` never drift apart.
"""

# Keys of every result a trial reports once per epoch.
TRAIN_LOSS = "train_loss"
VAL_LOSS = "val_loss"
LEARNING_RATE = "lr"
EPOCH_TIME = "epoch_time_s"
SAMPLES_PER_S = "samples_per_s"
EPOCH = "epoch"
DIVERGED = "diverged"
NODE = "node"
NODE_ID = "node_id"  # Ray's node id: tells apart nodes that share an IP (several on one machine)
DEVICE = "device"
GPU_IDS = "gpu_ids"  # the GPUs Ray assigned the trial (its CUDA_VISIBLE_DEVICES), whatever torch sees

# A trial's checkpoint folder: its full state (weights, optimizer, RNG), and the epoch and metric it was
# taken at, so that the export can pick the best checkpoint without Ray.
STATE_FILE = "state.pt"
META_FILE = "meta.json"
# Reported in place of a NaN/inf metric: searchers rank by order only, so a finite worst value marks the
# region as bad without feeding NaN to TPE or ASHA.
DIVERGED_PENALTY = 1e9

# Task metrics. The direction that makes each better is stated by the tasks that report it (`Task.metrics`);
# `trainables.tasks.metric_modes()` gathers them all.
BPC = "val_bpc"
RMSE = "val_rmse"
ACCURACY = "val_accuracy"

# Scalars that are logged to TensorBoard for every epoch, besides the task metric.
CURVE_KEYS = (TRAIN_LOSS, VAL_LOSS, LEARNING_RATE, EPOCH_TIME, SAMPLES_PER_S)


def test_key(metric: str) -> str:
    """The name of the test-split counterpart of a validation metric (`val_bpc` -> `test_bpc`)."""
    return "test_" + metric.removeprefix("val_")
