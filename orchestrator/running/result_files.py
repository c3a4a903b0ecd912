"""Tune's per-trial result files (result.json, progress.csv), kept whole when a trial restarts in the same run.

Tune's JSON and CSV logger callbacks write each trial's rows to the driver's staging directory, which is
copied to the run directory every so often. Each time a trial (re)starts from a checkpoint they first copy
the run directory's file back over the staging one, to pick up the rows of an earlier session. Within a
session that copy can be older than the staging file: a trial the promoting ASHA pauses at a rung and
resumes before the next copy loses the rows it reported since, for good (seen after a resume, where a trial
lost its first epoch's row and was then listed after a trial that started later). Here the copy back is
made only when this session has not written the file yet.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


class _KeepStaged:
    def _restore_from_remote(self, file_name: str, trial) -> None:
        staged = Path(trial.local_path, file_name)
        if staged.is_file() and staged.stat().st_size > 0:  # this session's rows: newer than the run directory's
            return
        super()._restore_from_remote(file_name, trial)


class JsonResults(_KeepStaged, JsonLoggerCallback):
    """Tune's result.json writer, without the copy back over rows this session wrote (see the module)."""


class CsvProgress(_KeepStaged, CSVLoggerCallback):
    """Tune's progress.csv writer, without the copy back over rows this session wrote (see the module)."""
