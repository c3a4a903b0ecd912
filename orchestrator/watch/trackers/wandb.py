"""The W&B tracker's Ray Tune callback: Ray's `WandbLoggerCallback`, changed where it did not fit (see the package).

Imports Ray and W&B, so only a run that uses the tracker loads it.
"""

from __future__ import annotations

from typing import Any

from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

from trainables.trial import TrialConfig, trial_dirname


class WandbTrialActor(_WandbLoggingActor):
    """Ray's logging actor for one trial's W&B run, waiting at the end until W&B has written the run.

    `wandb.finish()` returns before W&B's service process has flushed the run file, and Ray's callback kills
    the actor as soon as `run` returns; the service then dies with it, leaving an offline run of only its
    header (seen with wandb 0.31 for a trial that ended last). `wandb.teardown()` waits for the service."""

    def run(self):
        super().run()
        self._wandb.teardown()


class WandbTrials(WandbLoggerCallback):
    """One W&B run per trial (Ray's logging actor per trial), grouped by experiment, with the flat hyperparameters
    as its config; with `mode="offline"` no API key is asked for (nothing is sent: `wandb sync` uploads later)."""

    _logger_actor_cls = WandbTrialActor

    def setup(self, *args, **kwargs):
        if self.kwargs.get("mode") in ("offline", "disabled"):
            return  # Ray's setup insists on an API key (unless WANDB_MODE is exported), which an offline run does not use
        super().setup(*args, **kwargs)

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs):
        wandb_init_kwargs.update(config=TrialConfig.from_tune(trial.config).flat(), name=trial_dirname(trial))
        super()._start_logging_actor(trial, exclude_results, **wandb_init_kwargs)

    def on_experiment_end(self, trials, **info):
        # Trials that an interrupted experiment (Ctrl-C) stopped never reach log_trial_end, and Ray's callback
        # would wait for their W&B runs until its timeout (30 minutes): end those runs here first.
        for trial in list(self._trial_queues):
            self._signal_logging_actor_stop(trial)
        super().on_experiment_end(trials, **info)

    def log_trial_result(self, iteration: int, trial, result: dict[str, Any]):
        # Ray's actor merges a result's nested Tune config into the W&B config; the flat one is already there.
        super().log_trial_result(iteration, trial, {k: v for k, v in result.items() if k != "config"})


def wandb_callback(project: str, *, group: str, mode: str, root: str) -> WandbTrials:
    # console "off": the actor's output is not the user's; silent: no banner per trial in Ray's worker logs.
    # upload_timeout: how long the end of the experiment waits for the W&B runs to be written (and uploaded, online).
    return WandbTrials(project=project, group=group, mode=mode, dir=root, upload_timeout=300,
                       settings={"silent": True, "console": "off"})
