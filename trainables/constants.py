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
# Set (to the reason: the exception and the user's file and line) in the one result of a trial whose model could
# not be built, moved to its device or run on its first batch: the trial ends `infeasible`, no epoch trained.
INFEASIBLE = "infeasible"
# A trial's deployment figures (`trainables.footprint`), in every result from the first epoch on: its parameter
# count, and the milliseconds of a forward pass of 1 and of 256 inputs on the device it trained on.
NUM_PARAMS = "num_params"
LATENCY_MS = "latency_ms"
LATENCY_MS_256 = "latency_ms_256"
# How the latencies are measured (`trainables.footprint`), stated wherever they are shown.
LATENCY_METHOD = ("median of 3-9 timed forward passes after a warm-up one, eval mode, no gradients, on the device the "
                  "trial trained on, once after its first epoch")
NODE = "node"
NODE_ID = "node_id"  # Ray's node id: tells apart nodes that share an IP (several on one machine)
DEVICE = "device"
GPU_IDS = "gpu_ids"  # the GPUs Ray assigned the trial (its CUDA_VISIBLE_DEVICES), whatever torch sees
WORLD_SIZE = "world_size"  # data-parallel workers that trained the trial (`resources.workers`); 1 without DDP

# Keys of a result that say where and how a trial ran, not how it did: Tune's bookkeeping and the trainable's
# own placement keys. Readers that chart or tabulate measurements leave them out (each adds what it shows elsewhere).
BOOKKEEPING = frozenset({
    "done", "trial_id", "date", "pid", "hostname", "node_ip", "config", "time_since_restore", "iterations_since_restore",
    "checkpoint_dir_name", "should_checkpoint", NODE_ID, GPU_IDS,
})

# A trial's checkpoint folder: its full state (weights, optimizer, RNG), and the epoch and metric it was
# taken at, so that the export can pick the best checkpoint without Ray.
STATE_FILE = "state.pt"
META_FILE = "meta.json"
INFEASIBLE_FILE = "infeasible.txt"  # in an infeasible trial's folder: the full traceback of why it could not run
# Reported in place of a NaN/inf metric: searchers rank by order only, so a finite worst value marks the
# region as bad without feeding NaN to TPE or ASHA.
DIVERGED_PENALTY = 1e9

# Task metrics, as each split reports them (`val_` here; `test_key` names the test split's). Every epoch
# reports all the metrics of its task's objective; `trainables.tasks.metric_modes()` gathers them all.
BPC = "val_bpc"  # language models: bits per character
PERPLEXITY = "val_perplexity"
ACCURACY = "val_accuracy"  # classification
F1 = "val_f1"  # macro-averaged over the classes that occur in the targets or the predictions
LOG_LOSS = "val_log_loss"  # mean negative log-likelihood of the true class, in nats
RMSE = "val_rmse"  # regression, in the targets' own units
MAE = "val_mae"
MAPE = "val_mape"  # mean absolute percentage error as a fraction (0.05 is 5%), like scikit-learn's

# The direction that makes each metric better: stated once here, so no task or reader spells it again.
MODES = {
    BPC: "min", PERPLEXITY: "min", ACCURACY: "max", F1: "max", LOG_LOSS: "min", RMSE: "min", MAE: "min", MAPE: "min",
}
# The metrics each objective (`TaskData.objective["name"]`) reports every epoch; the first is its usual one.
OBJECTIVE_METRICS = {
    "bpc": (BPC, PERPLEXITY),
    "accuracy": (ACCURACY, F1, LOG_LOSS),
    "rmse": (RMSE, MAE, MAPE),
}


def modes(*metrics: str) -> dict[str, str]:
    """metric -> "min" | "max" for the named metrics (a task's `metrics` record)."""
    return {metric: MODES[metric] for metric in metrics}

# Scalars that are logged to TensorBoard for every epoch, besides the task metric.
CURVE_KEYS = (TRAIN_LOSS, VAL_LOSS, LEARNING_RATE, EPOCH_TIME, SAMPLES_PER_S)


def test_key(metric: str) -> str:
    """The name of the test-split counterpart of a validation metric (`val_bpc` -> `test_bpc`)."""
    return "test_" + metric.removeprefix("val_")
