"""What a run prints: the header before the search, trial descriptions, and the summary after it.

Plain functions of plain values (no Ray, no torch), shared by the run flow, the progress view and `best`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from orchestrator.reading import results as R
from trainables import constants as C
from trainables.trial import FAMILY, MODEL_PREFIX, TrialConfig

# The hyperparameters a one-line trial description shows, when the trial has them.
KEY_HPARAMS = ("model/hidden_size", "model/d_model", "model/num_layers", "lr", "optimizer", "batch_size", "window")


def clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def describe(config: dict[str, Any]) -> str:
    """`lstm hidden_size=96 num_layers=2 lr=3.1e-03 ...` for a Tune config."""
    flat = TrialConfig.from_tune(config).flat()
    parts = [flat[FAMILY]]
    keys = [k for k in KEY_HPARAMS if k in flat]
    if not any(k.startswith(MODEL_PREFIX) for k in keys):  # a family of the user's: its own first few instead
        keys = [k for k in flat if k.startswith(MODEL_PREFIX)][:3] + keys
    for key in keys:
        if key in flat:
            value, name = flat[key], key.removeprefix(MODEL_PREFIX)
            parts.append(f"{name}={value:.1e}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)


def first_trials(exp) -> str:
    """What runs before the searcher's own suggestions (`Experiment.first_points`), in words ('' when nothing does)."""
    config = exp.config
    given = len(config.points_to_evaluate)
    portfolio = len(exp.first_points) - given
    parts = ([f"{given} point(s) of points_to_evaluate"] if given else []) + (
        [f"{portfolio} from the warm start's portfolio (configurations that did well on the bundled tasks; `warm_start: none` "
         "leaves them out)"] if portfolio else [])
    return ", then ".join(parts) + (f", then the {config.searcher} searcher's own" if parts else "")


def header(exp, summary: str, run_dir: Path, num_trials: int, concurrency: int, out: TextIO, warnings: tuple = ()) -> None:
    """The lines printed before the search starts: data, search set-up, resources, what validation let through with
    a warning, and where results go."""
    from orchestrator.search.schedulers import SCHEDULERS

    c = exp.config
    sched = SCHEDULERS[c.scheduler.kind].describe(c.scheduler.model_dump())
    print(f"Experiment {run_dir.name}: {summary}", file=out)
    print(
        f"  {num_trials} trials over {', '.join(exp.space.families)} | searcher {c.searcher} | scheduler {sched} | "
        f"{concurrency} at once, {c.resources.cpu:g} CPU / {c.resources.gpu:g} GPU each" + (f" worker, {c.resources.workers} workers per trial" if c.resources.workers > 1 else ""),
        file=out,
    )
    note = SCHEDULERS[c.scheduler.kind].concurrency_note(c.scheduler.model_dump(), concurrency)
    if note:
        print(f"  note: {note}", file=out)
    if num_trials < c.num_samples:
        print(f"  note: the space has {num_trials} distinct configurations, so each runs once ({num_trials} trials, not "
              f"num_samples {c.num_samples})", file=out)
    first = first_trials(exp)
    if first:
        print(f"  first: {first}", file=out)
    if c.resources.workers > 1:
        print(f"  data-parallel (DDP, {'nccl' if c.resources.gpu else 'gloo'}): each step trains batch_size x {c.resources.workers} "
              f"samples, batch_size on each worker", file=out)
    for warning in warnings:
        print(f"  warning: {warning}", file=out)
    print(f"  run directory: {run_dir}", file=out, flush=True)


def summarize(run_dir: Path, task, trials: list[R.TrialRecord], best, task_metric: str, max_epochs: int, elapsed: float, out: TextIO,
              own_class: bool = False) -> None:
    """The end-of-run summary: outcomes, failures with reasons, the best trial and how to use it.

    `task`: the task's record, whose `usage` adds its own lines (charlm: how to sample text); `own_class`: the best
    model is of the user's own class, which load_model imports only when told to trust it."""
    counts = R.status_counts(trials, max_epochs)
    print(f"\nDone in {clock(elapsed)}: {len(trials)} trials (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")", file=out)
    limited = [t for t in trials if (t.infeasible or "").startswith("limits.")]
    if limited:
        print(f"  the experiment's limits removed {len(limited)} trial(s) (each ended infeasible, the searcher told)", file=out)
    for t in trials:
        if t.status(max_epochs) in (R.FAILED, R.DIVERGED, R.INFEASIBLE):
            reason = t.error or t.infeasible or "loss became NaN/inf"
            print(f"  {t.status(max_epochs)}: {t.trial_id} [{describe(t.config)}]: {reason}", file=out)
    if best is None:
        print("No trial produced a usable model.", file=out)
        return
    test = C.test_key(task_metric)
    print(f"Best trial {best.trial.trial_id} [{describe(best.trial.config)}] at epoch {best.epoch}:", file=out)
    print(f"  {task_metric} {best.metrics[task_metric]:.4g} (validation), {test} {best.metrics[test]:.4g} (test)", file=out)
    # The task's other metrics (macro-F1, log loss, MAE...), as validation / test pairs.
    others = [k for k in best.metrics if k in C.MODES and k != task_metric and C.test_key(k) in best.metrics]
    if others:
        pairs = ", ".join(f"{k.removeprefix('val_')} {best.metrics[k]:.4g} / {best.metrics[C.test_key(k)]:.4g}" for k in others)
        print(f"  also (validation / test): {pairs}", file=out)
    if getattr(best, "evaluated_on", None):
        print(f"  (evaluated on {best.evaluated_on}: the budget bounds the export too)", file=out)
    for line in step_lines(getattr(best, "per_step", None) or {}):
        print(f"  {line}", file=out)
    for line in baseline_lines(R.read_run(run_dir).baselines(), task_metric, C.MODES.get(task_metric, "min"), best.metrics[task_metric]):
        print(f"  {line}", file=out)
    lines = [
        ("Run directory", str(run_dir)),
        ("Leaderboard", f"orchestrator best {run_dir}"),
        ("TensorBoard", f"orchestrator tensorboard {run_dir}   (or: tensorboard --logdir {run_dir})"),
        ("Best model", str(best.path)),
        *task.usage(best.path),
        ("In Python", f"from trainables import load_model; m = load_model('{best.path}'"
                      + (", trust_code=True)   (or model_class=YourClass: the model is your own class)" if own_class else ")")),
    ]
    for label, text in lines:
        print(f"{label + ':':<15} {text}", file=out)


def baseline_lines(baselines: dict[str, dict[str, float]], metric: str, mode: str, value: float | None) -> list[str]:
    """The task's baselines beside the best model's validation `value` of `metric`: each baseline's validation and
    test values, then how much the model beats the best baseline by, or a warning that it does not."""
    scored = {name: b for name, b in baselines.items() if metric in b}
    if not scored:
        return []
    test = C.test_key(metric)
    listed = ", ".join(f"{name} {b[metric]:.4g} / {b[test]:.4g}" if test in b else f"{name} {b[metric]:.4g}" for name, b in scored.items())
    lines = [f"baselines ({metric} validation / test): {listed}"]
    if value is None:
        return lines
    sign = 1.0 if mode == "min" else -1.0
    name, ref = min(((n, b[metric]) for n, b in scored.items()), key=lambda pair: sign * pair[1])
    if sign * (value - ref) < 0:
        # Lower-is-better metrics (errors, bits) as a relative cut; higher-is-better ones (accuracy, F1) as a difference.
        gain = f"{(ref - value) / abs(ref):.0%} below" if mode == "min" and ref else f"{abs(value - ref):.3g} above"
        lines.append(f"the best model's {metric} {value:.4g} is {gain} the best baseline, {name} ({ref:.4g})")
    else:
        lines.append(f"warning: the best model's {metric} {value:.4g} does not beat the {name} baseline ({ref:.4g}); "
                     "a longer search, a wider space or more data may")
    return lines


def step_lines(per_step: dict[str, list[float]]) -> list[str]:
    """A forecast over a horizon: the best model's error at each step, validation / test (best/metrics.json's `per_step`)."""
    lines = []
    for name in ("rmse", "mae"):
        val, test = per_step.get(f"val_{name}"), per_step.get(f"test_{name}")
        if val and test:
            steps = ", ".join(f"{v:.4g} / {t:.4g}" for v, t in zip(val, test))
            lines.append(f"{name} at each step of the horizon (validation / test): {steps}")
    return lines


def ensemble_lines(record: dict | None, metric: str) -> list[str]:
    """An ensemble (best/ensemble.json) beside the best single model: members with weights, validation and test values."""
    if not record:
        return []
    test = C.test_key(metric)
    ours, single = record["metrics"], (record.get("best_single") or {}).get("metrics") or {}
    members = ", ".join(f"{m['trial_id']} ({m['family']}) {m['weight']:.2f}" for m in record["members"])
    against = f"; best single model {single[metric]:.4g} / {single[test]:.4g}" if metric in single and test in single else ""
    return [f"ensemble of {len(record['members'])} (of the top {record['k']}): {metric} {ours[metric]:.4g} / {test} {ours[test]:.4g}"
            f"{against}", f"  members (trial, family, weight): {members}"]


def budget_line(plan, spent: dict[str, float], trials: int, out: TextIO, ended_early: str | None = None) -> None:
    """How a budgeted run spent its time (`spent`: seconds of start-up, searching and export, in that order), against
    its plan; `ended_early`: why the search ended before the budget's last tenth, when it did."""
    from orchestrator.search.budget import clock_text

    parts = [f"{clock(seconds)} {name}" + (f" ({trials} trials)" if name == "searching" else "") for name, seconds in spent.items()]
    print(f"{'Budget:':<15} {clock(plan.budget_s)} budget: {', '.join(parts)}; {clock(sum(spent.values()))} in all "
          f"(planned ~{plan.num_samples} trials over ~{clock(plan.expected_s)}, then more until the budget)", file=out, flush=True)
    if ended_early:
        print(f"{'':<15} the search ended before the budget ({clock_text(plan.budget_s)}): {ended_early}", file=out, flush=True)
