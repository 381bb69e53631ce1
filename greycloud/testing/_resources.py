"""Cached contents and batch prediction jobs: the emulator's stored resources.

Both run on the emulator's clock (see :class:`Timeline`), so a test with an injected clock can
expire a cache or advance a batch job without sleeping. A batch job moves through its states on
time; when the store has a runner that can reach Cloud Storage, the job's input is also run
(see ``_batch_runner``) and the job succeeds or fails by what that run found.
"""

from __future__ import annotations

import datetime
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._answers import prompt_tokens
from ._batch_runner import BatchRunner, RunOutcome
from ._rpc import ResourceError

DEFAULT_CACHE_TTL = 3600.0


class Timeline:
    """The emulator's clock, and wall-clock timestamps derived from it (RFC 3339, UTC)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._offset = datetime.datetime.now(datetime.UTC).timestamp() - clock()

    def stamp(self, at: float) -> str:
        moment = datetime.datetime.fromtimestamp(at + self._offset, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def parse(self, text: str) -> float:
        """The clock time of an RFC 3339 timestamp."""
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp() - self._offset


def parse_duration(text: object) -> float:
    """Seconds of a protobuf Duration such as ``"3600s"`` or ``"1.5s"``."""
    if not isinstance(text, str) or not text.endswith("s"):
        raise ResourceError(400, f"Invalid duration {text!r}; expected e.g. '3600s'.")
    try:
        seconds = float(text[:-1])
    except ValueError:
        raise ResourceError(400, f"Invalid duration {text!r}; expected e.g. '3600s'.") from None
    if seconds <= 0:
        raise ResourceError(400, f"Duration must be positive, got {text!r}.")
    return seconds


def page(
    items: list[dict[str, Any]], page_size: str | None, page_token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items``; the token is simply the offset of the next page."""
    try:
        start = int(page_token) if page_token else 0
        size = int(page_size) if page_size else 100
    except ValueError:
        raise ResourceError(400, "Invalid pageSize or pageToken.") from None
    size = max(1, min(size, 1000))
    chunk = items[start : start + size]
    following = start + size
    return chunk, (str(following) if following < len(items) else None)


@dataclass
class _Cache:
    name: str
    body: dict[str, Any]
    tokens: int
    created: float
    updated: float
    expires: float


class CacheStore:
    """cachedContents by full resource name."""

    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline
        self._lock = threading.Lock()
        self._caches: dict[str, _Cache] = {}
        self._ids = itertools.count(random.randrange(10**17, 10**18))

    def _expiry(self, body: dict[str, Any], now: float) -> float:
        if body.get("expireTime"):
            try:
                return self._timeline.parse(str(body["expireTime"]))
            except ValueError:
                raise ResourceError(400, f"Invalid expireTime {body['expireTime']!r}.") from None
        if body.get("ttl"):
            return now + parse_duration(body["ttl"])
        return now + DEFAULT_CACHE_TTL

    def _view(self, cache: _Cache) -> dict[str, Any]:
        stamp = self._timeline.stamp
        view: dict[str, Any] = {
            "name": cache.name,
            "model": cache.body.get("model"),
            "createTime": stamp(cache.created),
            "updateTime": stamp(cache.updated),
            "expireTime": stamp(cache.expires),
            "usageMetadata": {"totalTokenCount": cache.tokens},
        }
        if cache.body.get("displayName"):
            view["displayName"] = cache.body["displayName"]
        return view

    def create(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("model"):
            raise ResourceError(400, "CachedContent.model is required.")
        if not body.get("contents") and not body.get("systemInstruction"):
            raise ResourceError(400, "CachedContent needs contents or a systemInstruction.")
        now = self._timeline.clock()
        prefix = f"{parent}/" if parent else ""
        with self._lock:
            name = f"{prefix}cachedContents/{next(self._ids)}"
            cache = _Cache(name, body, prompt_tokens(body), now, now, self._expiry(body, now))
            self._caches[name] = cache
            return self._view(cache)

    def _live(self, name: str) -> _Cache:
        cache = self._caches.get(name)
        if cache is not None and cache.expires <= self._timeline.clock():
            del self._caches[name]
            cache = None
        if cache is None:
            raise ResourceError(404, f"CachedContent not found (or expired): {name}")
        return cache

    def tokens(self, name: str) -> int:
        """The token count of a live cache (404 ResourceError when missing or expired)."""
        with self._lock:
            return self._live(name).tokens

    def get(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._view(self._live(name))

    def update(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("ttl") and not body.get("expireTime"):
            raise ResourceError(400, "Only ttl or expireTime can be updated.")
        now = self._timeline.clock()
        with self._lock:
            cache = self._live(name)
            cache.expires = self._expiry(body, now)
            cache.updated = now
            return self._view(cache)

    def delete(self, name: str) -> None:
        with self._lock:
            self._live(name)
            del self._caches[name]

    def list(
        self,
        parent: str,
        page_size: str | None,
        page_token: str | None,
        also_under: str | None = None,
    ) -> dict[str, Any]:
        """The live caches under ``parent`` (and under ``also_under``, when given)."""
        prefix: tuple[str, ...] = (f"{parent}/cachedContents/" if parent else "cachedContents/",)
        if also_under:
            prefix += (f"{also_under}/cachedContents/",)
        now = self._timeline.clock()
        with self._lock:
            views = [
                self._view(cache)
                for name, cache in self._caches.items()
                if name.startswith(prefix) and cache.expires > now
            ]
        items, token = page(views, page_size, page_token)
        result: dict[str, Any] = {"cachedContents": items}
        if token:
            result["nextPageToken"] = token
        return result

    def clear(self) -> None:
        with self._lock:
            self._caches.clear()


_TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_CANCELLED", "JOB_STATE_FAILED"}


@dataclass
class _Job:
    name: str
    body: dict[str, Any]
    created: float
    cancelled: float | None = field(default=None)
    run_started: bool = False  # a run of the input was started (it ends in ``outcome``)
    outcome: RunOutcome | None = None
    finished: float | None = None  # when the run ended, on the emulator's clock


class BatchStore:
    """batchPredictionJobs: PENDING, then RUNNING after ``step`` s, SUCCEEDED after 2 × ``step``.

    With a ``runner`` that is enabled, the input is run when the job is first seen RUNNING; the
    job stays RUNNING until both the run and its ``step`` are over, then SUCCEEDED (or FAILED
    with the run's error).
    """

    def __init__(self, timeline: Timeline, step: float) -> None:
        self._timeline = timeline
        self.step = step
        self.runner: BatchRunner | None = None
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._ids = itertools.count(random.randrange(10**18, 9 * 10**18))
        self._operations = itertools.count(random.randrange(10**18, 9 * 10**18))

    def _state(self, job: _Job, now: float) -> tuple[str, float | None, float | None]:
        """State, start time and end time at ``now``."""
        started = job.created + self.step
        if job.cancelled is not None:
            start = started if started <= job.cancelled else None
            if now < job.cancelled + self.step:
                return "JOB_STATE_CANCELLING", start, None
            return "JOB_STATE_CANCELLED", start, job.cancelled + self.step
        if now < started:
            return "JOB_STATE_PENDING", None, None
        if now < started + self.step:
            return "JOB_STATE_RUNNING", started, None
        if job.run_started:
            if job.outcome is None or job.finished is None:
                return "JOB_STATE_RUNNING", started, None
            end = max(started + self.step, job.finished)
            if job.outcome.error is not None:
                return "JOB_STATE_FAILED", started, end
        return "JOB_STATE_SUCCEEDED", started, started + self.step

    def _advance(self, job: _Job, now: float) -> None:
        """Start running the job's input once it is RUNNING (called with the lock held)."""
        runner = self.runner
        if job.run_started or job.cancelled is not None or runner is None:
            return
        if now < job.created + self.step or not runner.enabled():
            return
        job.run_started = True
        project = job.name.split("/")[1]
        folder = "prediction-model-" + self._timeline.stamp(job.created + self.step)

        def run() -> None:
            outcome = runner.run(job.body, project, folder)
            with self._lock:
                job.outcome = outcome
                job.finished = self._timeline.clock()

        threading.Thread(target=run, name=f"batch-{job.name}", daemon=True).start()

    def _view(self, job: _Job, now: float) -> dict[str, Any]:
        state, start, end = self._state(job, now)
        stamp = self._timeline.stamp
        view: dict[str, Any] = {
            "name": job.name,
            **{key: value for key, value in job.body.items() if key != "name"},
            "state": state,
            "createTime": stamp(job.created),
            "updateTime": stamp(max(x for x in (job.created, start, end) if x is not None)),
        }
        if start is not None:
            view["startTime"] = stamp(start)
        if end is not None:
            view["endTime"] = stamp(end)
        outcome = job.outcome
        if outcome is not None and state in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"):
            if outcome.error is not None:
                view["error"] = outcome.error
            else:
                view["outputInfo"] = {"gcsOutputDirectory": outcome.output_directory}
                view["completionStats"] = {
                    "successfulCount": str(outcome.succeeded),
                    "failedCount": str(outcome.failed),
                    "incompleteCount": "0",
                }
        return view

    def create(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        for required in ("model", "inputConfig", "outputConfig"):
            if not body.get(required):
                raise ResourceError(400, f"BatchPredictionJob.{required} is required.")
        now = self._timeline.clock()
        with self._lock:
            job = _Job(f"{parent}/batchPredictionJobs/{next(self._ids)}", body, now)
            self._jobs[job.name] = job
            return self._view(job, now)

    def _find(self, name: str) -> _Job:
        job = self._jobs.get(name)
        if job is None:
            raise ResourceError(404, f"BatchPredictionJob not found: {name}")
        return job

    def get(self, name: str) -> dict[str, Any]:
        now = self._timeline.clock()
        with self._lock:
            job = self._find(name)
            self._advance(job, now)
            return self._view(job, now)

    def cancel(self, name: str) -> dict[str, Any]:
        now = self._timeline.clock()
        with self._lock:
            job = self._find(name)
            # As get() sees it: a job due to run is running, not already SUCCEEDED.
            self._advance(job, now)
            state, _, _ = self._state(job, now)
            if state in _TERMINAL or job.cancelled is not None:
                raise ResourceError(
                    400, f"BatchPredictionJob {name} is in state {state} and cannot be cancelled."
                )
            job.cancelled = now
        return {}

    def delete(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._find(name)
            del self._jobs[name]
            operation = f"{name}/operations/{next(self._operations)}"
        return {
            "name": operation,
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata"
            },
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }

    def list(self, parent: str, page_size: str | None, page_token: str | None) -> dict[str, Any]:
        prefix = f"{parent}/batchPredictionJobs/"
        now = self._timeline.clock()
        with self._lock:
            jobs = [job for name, job in self._jobs.items() if name.startswith(prefix)]
            for job in jobs:
                self._advance(job, now)
            views = [self._view(job, now) for job in jobs]
        items, token = page(views, page_size, page_token)
        result: dict[str, Any] = {"batchPredictionJobs": items}
        if token:
            result["nextPageToken"] = token
        return result

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()
