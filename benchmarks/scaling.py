"""Data-parallel scaling: samples/s of one trial at `resources.workers` 1, 2, 4, ... on the charlm task.

    python -m benchmarks.scaling --workers 1,2,4 --gpu 1     # a GPU per worker, nccl (a node with 4 GPUs)
    python -m benchmarks.scaling --workers 1,2 --cpu 1       # CPU workers, gloo (what a laptop can check)

The trial is the largest Transformer config of the bundled `charlm` space (`LARGEST`), trained by the
orchestrator's own worker group (`trainables.parallel.WorkerGroup`, what a trial with `workers: N` runs),
each worker with `batch_size` samples per step (so N workers train `batch_size x N` per step). Reported per
worker count: the median samples/s over the epochs after the first (which warms up kernels and caches),
the speed-up over one worker and the efficiency (speed-up / N). Written to `<out>/scaling-<device>.md`, `.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The largest Transformer of search_spaces/charlm.yaml: every size at its top (tests check it is in the space).
LARGEST = {
    "arch": {"family": "transformer", "model": {"d_model": 64, "num_layers": 2, "num_heads": 4, "ff_mult": 4, "dropout": 0.0,
                                                 "positions": "learned"}},
    "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6, "batch_size": 64, "grad_clip": 0.0, "lr_schedule": "none",
}


def measure(data, workers: int, cpu: float, gpu: float, epochs: int, steps: int) -> dict:
    from trainables import constants as C
    from trainables.host import TrialSettings
    from trainables.parallel import WorkerGroup

    settings = TrialSettings(metric=C.BPC, mode="min", max_epochs=epochs, steps_per_epoch=steps, cpus=cpu, gpus=gpu, workers=workers)
    began = time.perf_counter()
    group = WorkerGroup(data, settings)
    try:
        group.start(LARGEST)
        started = time.perf_counter() - began
        results = [group.epoch() for _ in range(epochs)]
    finally:
        group.shutdown()
    rates = [r[C.SAMPLES_PER_S] for r in results[1:]] or [results[0][C.SAMPLES_PER_S]]
    return {"workers": workers, "samples_per_s": statistics.median(rates), "epoch_rates": [r[C.SAMPLES_PER_S] for r in results],
            "group_start_s": started, "device": results[0][C.DEVICE], "val_bpc": results[-1][C.BPC]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n")[0])
    p.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    p.add_argument("--cpu", type=float, default=1.0, help="CPUs per worker")
    p.add_argument("--gpu", type=float, default=0.0, help="GPUs per worker: 0 (gloo on CPUs) or 1 (nccl)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per worker count; the first is warm-up")
    p.add_argument("--steps", type=int, default=100, help="steps per epoch (each of batch_size x workers samples)")
    p.add_argument("--max-chars", type=int, default=1_000_000)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--out", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    from benchmarks.harness import machine
    from orchestrator.experiment.config import TASK_OPTIONS
    from orchestrator.running import cluster
    from trainables.tasks import TASKS

    info = machine()
    if args.gpu and not info["gpu"]:
        p.error("--gpu: nvidia-smi finds no GPU on this machine; use --gpu 0")
    cluster.start_ray(None)
    data = TASKS["charlm"].load(TASK_OPTIONS["charlm"](kind="charlm", max_chars=args.max_chars, seq_len=args.seq_len))
    rows = []
    for n in counts:
        rows.append(measure(data, n, args.cpu, args.gpu, args.epochs, args.steps))
        print(f"workers {n}: {rows[-1]['samples_per_s']:.0f} samples/s on {rows[-1]['device']}", flush=True)
    base = rows[0]["samples_per_s"] / rows[0]["workers"]
    lines = [
        f"One charlm trial, the largest Transformer of the bundled space (d_model 64, 2 layers, 4 heads, ff x4), batch 64 "
        f"per worker, seq_len {args.seq_len}, {args.steps} steps per epoch, median of epochs 2-{args.epochs}; "
        f"{'1 GPU (nccl)' if args.gpu else f'{args.cpu:g} CPU (gloo)'} per worker.",
        f"Machine: {info['cpu']}, {info['cpus']} CPUs, {info['gpu'] or 'no GPU'}; torch {info['torch']}, ray {info['ray']}.",
        "",
        "| workers | samples/s | speed-up | efficiency |",
        "|---|---|---|---|",
    ]
    for r in rows:
        speedup = r["samples_per_s"] / base  # over one worker (the first count, scaled to one worker)
        lines.append(f"| {r['workers']} | {r['samples_per_s']:.0f} | {speedup:.2f} | {speedup / r['workers']:.0%} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"scaling-{'gpu' if args.gpu else 'cpu'}"
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({"args": vars(args), "machine": info, "runs": rows}, indent=2))
    print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
