"""A live one-line display of a batch job's progress on a terminal (rich, when installed).

Shown only when asked for, or by default when stderr is a terminal; the library prints nothing
otherwise. Used the same way by both batch clients (a plain context manager, no I/O of its own
besides drawing).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from google.genai import types


def job_state(job: types.BatchJob) -> str:
    """The job's state name, e.g. ``JOB_STATE_RUNNING`` (``JOB_STATE_UNSPECIFIED`` when unset)."""
    return job.state.name if job.state is not None else "JOB_STATE_UNSPECIFIED"


def describe(job: types.BatchJob) -> str:
    """e.g. ``batch job 123: RUNNING (40 done, 2 failed)``."""
    state = job_state(job).removeprefix("JOB_STATE_")
    text = f"batch job {(job.name or '?').rsplit('/', 1)[-1]}: {state}"
    stats = job.completion_stats
    if stats is not None and (stats.successful_count or stats.failed_count):
        text += f" ({stats.successful_count or 0} done, {stats.failed_count or 0} failed)"
    return text


class JobProgress:
    """``with JobProgress(enabled) as progress: progress.update(job)``."""

    def __init__(self, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._status: Any = None
        if enabled:
            try:
                from rich.console import Console
            except ImportError:  # pragma: no cover - rich is the cli extra
                return
            self._status = Console(stderr=True).status("batch job: waiting for the first poll")

    @property
    def shown(self) -> bool:
        return self._status is not None

    def __enter__(self) -> JobProgress:
        if self._status is not None:
            self._status.start()
        return self

    def update(self, job: types.BatchJob) -> None:
        if self._status is not None:
            self._status.update(describe(job))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()
