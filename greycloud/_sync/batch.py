# DO NOT EDIT: generated from _async_src/batch.py by tools/generate.py.
# Change _async_src/batch.py and run `make generate`.
# output-sha256: cd134a90638574b9
"""Batch prediction jobs: input to Cloud Storage, the job, its progress, and its results.

This file is the only hand-written copy of the batch client. ``make generate`` turns it into
the sync one; keep comments and docstrings true for both.
"""

from __future__ import annotations

import datetime
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from google.genai import types

from .. import _gcs, auth
from .._batch_progress import JobProgress, job_state
from .._core.batch_format import (
    BatchResult,
    lines_from_jsonl,
    parse_prediction,
    prediction_files,
    request_lines,
    request_schemas,
    to_jsonl,
)
from .._core.retry import classify
from .._primitives import sync_map_bounded, sync_run_blocking, sync_sleep
from ..config import GreyCloudConfig
from ..errors import BatchJobFailedError, BatchResultsNotFoundError, ConfigError
from .client import GreyCloudClient, _ClientBacked
from .rate_limiter import SyncVertexRateLimiter

logger = logging.getLogger("greycloud.batch")

BatchRequests = Sequence[types.InlinedRequest | Mapping[str, Any]] | str | os.PathLike[str]
JobRef = types.BatchJob | str
# callback(job): told each time the job is seen in a new state.
JobCallback = Callable[[types.BatchJob], None]

RUN_FOLDER = "greycloud-batch"
JSONL_TYPE = "application/jsonl"
MAX_POLL_FAILURES = 5
_SUCCEEDED = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
_UNSUCCESSFUL = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})


def _name(job: JobRef) -> str:
    name = job if isinstance(job, str) else job.name
    if not name:
        raise ConfigError("job", "the batch job has no name")
    return name


def _run_folder() -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{RUN_FOLDER}/{stamp}-{uuid.uuid4().hex[:8]}"


class GreyCloudBatch(_ClientBacked):
    """Vertex AI batch prediction jobs with their input and output in Cloud Storage.

    ``client`` shares a greycloud client's SDK connection, credentials and limiter; without
    it one is built from ``config``, ``credentials`` and ``rate_limiter`` (in
    ``config.batch_location`` when set) and closed with this object. ``storage_client`` is a
    ``google.cloud.storage.Client``; by default one is made for the config's project with the
    client's credentials (``STORAGE_EMULATOR_HOST`` is honoured). The bucket is
    ``bucket_name`` when a method takes one, else ``config.batch_gcs_bucket`` or
    ``config.gcs_bucket``.
    """

    def __init__(
        self,
        config: GreyCloudConfig | None = None,
        *,
        credentials: auth.Credentials | None = None,
        rate_limiter: SyncVertexRateLimiter | None = None,
        client: GreyCloudClient | None = None,
        storage_client: Any = None,
    ) -> None:
        if client is None and config is not None and config.batch_location:
            # Batch jobs may live in another region than interactive calls.
            config = config.replace(location=config.batch_location)
        super().__init__(config, credentials, rate_limiter, client)
        self._storage = storage_client
        self._buckets_seen: set[str] = set()
        # job name -> {request key: response schema}, for the jobs this object created.
        self._schemas: dict[str, dict[str, Any]] = {}

    # -- Cloud Storage ----------------------------------------------------------------------

    def upload_file_to_gcs(
        self,
        local_path: str | os.PathLike[str],
        bucket_name: str | None = None,
        blob_name: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """Upload a local file; returns its ``gs://`` URI (the object is named after the file
        unless ``blob_name`` is given; the type is guessed from the name unless given)."""
        path = Path(local_path)
        bucket = self._bucket(bucket_name)
        storage = self._storage_client()
        return sync_run_blocking(
            _gcs.upload_file, storage, bucket, blob_name or path.name, path, content_type
        )

    def upload_string_to_gcs(
        self,
        data: str | bytes,
        blob_name: str,
        bucket_name: str | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> str:
        """Upload text or bytes as one object; returns its ``gs://`` URI."""
        payload = data.encode() if isinstance(data, str) else data
        bucket = self._bucket(bucket_name)
        storage = self._storage_client()
        return sync_run_blocking(
            _gcs.upload_bytes, storage, bucket, blob_name, payload, content_type
        )

    def upload_files_to_gcs(
        self,
        local_paths: Sequence[str | os.PathLike[str]],
        bucket_name: str | None = None,
        prefix: str = "",
        max_concurrency: int = 8,
    ) -> list[str]:
        """Upload several files, at most ``max_concurrency`` at once, each as ``prefix`` +
        its file name; returns their URIs in the order given."""
        bucket = self._bucket(bucket_name)
        paths = [Path(path) for path in local_paths]
        folder = f"{prefix.rstrip('/')}/" if prefix else ""

        def upload(path: Path) -> str:
            return self.upload_file_to_gcs(path, bucket, folder + path.name)

        return sync_map_bounded(upload, paths, max(1, max_concurrency))

    def upload_batch_requests_to_gcs(
        self,
        batch_requests: BatchRequests,
        bucket_name: str | None = None,
        blob_name: str | None = None,
        model: str | None = None,
    ) -> str:
        """Check every request, then upload them as batch input JSONL; returns the URI.

        Requests are ``types.InlinedRequest`` objects or dicts (see ``create_batch_job``), or
        the path of a local JSONL file. A bad request raises ``BatchInputError`` with its index
        (or line number) before anything is uploaded.
        """
        bucket_field = self._bucket_name(bucket_name)
        lines = self._lines(batch_requests, model or self.config.model)
        bucket = self._bucket(bucket_field)
        name = blob_name or f"{_run_folder()}/input.jsonl"
        storage = self._storage_client()
        return sync_run_blocking(
            _gcs.upload_bytes, storage, bucket, name, to_jsonl(lines), JSONL_TYPE
        )

    # -- jobs -------------------------------------------------------------------------------

    def create_batch_job(
        self,
        batch_requests: BatchRequests,
        model: str | None = None,
        bucket_name: str | None = None,
        results_prefix: str | None = None,
        display_name: str | None = None,
    ) -> types.BatchJob:
        """Upload the requests and start a batch prediction job on them.

        ``batch_requests``: ``types.InlinedRequest`` objects (an id in ``metadata["key"]``),
        dicts holding a request (``{"contents": ..., "generationConfig": ...}`` in either
        case, or google-genai's ``{"contents": ..., "config": ...}``, with an optional
        ``"key"``), whole input lines ``{"key": ..., "request": {...}}``, the path of a local
        JSONL file of those, or the ``gs://`` URI of input already uploaded. Requests without
        a key get ``request-<index>``. Results are written under ``results_prefix`` (a path in
        the bucket or a ``gs://`` URI; default: next to the input).
        """
        model = model or self.config.model
        if isinstance(batch_requests, str) and batch_requests.startswith(_gcs.GCS_SCHEME):
            bucket = self._bucket_name(bucket_name, _gcs.parse_gcs_uri(batch_requests)[0])
            source = batch_requests
            folder = _run_folder()
        else:
            bucket = self._bucket_name(bucket_name)
            folder = _run_folder()
            source = self.upload_batch_requests_to_gcs(
                batch_requests, bucket, f"{folder}/input.jsonl", model
            )
        if results_prefix is None:
            destination = _gcs.gcs_uri(bucket, f"{folder}/output")
        elif results_prefix.startswith(_gcs.GCS_SCHEME):
            destination = results_prefix
        else:
            destination = _gcs.gcs_uri(bucket, results_prefix.strip("/"))
        job: types.BatchJob = self._client._call_with_auth(
            "batches",
            "create",
            model=model,
            src=source,
            config=types.CreateBatchJobConfig(dest=destination, display_name=display_name),
        )
        logger.info("created batch job %s on %s (results under %s)", job.name, source, destination)
        if (
            job.name
            and isinstance(batch_requests, Sequence)
            and not isinstance(batch_requests, str)
        ):
            self._schemas[job.name] = request_schemas(batch_requests)
        return job

    def get_batch_job(self, job: JobRef) -> types.BatchJob:
        current: types.BatchJob = self._client._call_with_auth("batches", "get", name=_name(job))
        return current

    def cancel_batch_job(self, job: JobRef) -> None:
        """Ask the service to cancel the job (it moves to CANCELLING, then CANCELLED)."""
        self._client._call_with_auth("batches", "cancel", name=_name(job))

    def monitor_batch_job(
        self,
        job: JobRef,
        poll_interval: float | None = None,
        callback: JobCallback | None = None,
        progress: bool | None = None,
    ) -> types.BatchJob:
        """Poll the job until it ends; returns it when it succeeded.

        ``callback(job)`` is called whenever the job is seen in a new state. ``progress``
        shows a live line on stderr (default: when stderr is a terminal). A job that fails,
        is cancelled or expires raises ``BatchJobFailedError`` with the job's error. Transient
        errors while polling are retried (up to five in a row). Stopping the wait (cancelling
        the task, or Ctrl-C) leaves the job running; ``cancel_batch_job`` stops it.
        """
        name = _name(job)
        interval = poll_interval if poll_interval is not None else self.config.batch_poll_interval
        if interval <= 0:
            raise ConfigError("poll_interval", f"must be positive seconds, got {interval}")
        last_state = None
        failures = 0
        with JobProgress(progress) as display:
            while True:
                try:
                    current = self.get_batch_job(name)
                except Exception as exc:
                    failures += 1
                    if not classify(exc).transient or failures >= MAX_POLL_FAILURES:
                        raise
                    logger.info("polling batch job %s failed (%s); trying again", name, exc)
                    sync_sleep(interval)
                    continue
                failures = 0
                state = job_state(current)
                display.update(current)
                if state != last_state:
                    last_state = state
                    logger.info("batch job %s is %s", name, state)
                    if callback is not None:
                        callback(current)
                if state in _SUCCEEDED:
                    return current
                if state in _UNSUCCESSFUL:
                    raise BatchJobFailedError(name, state, current.error)
                sync_sleep(interval)

    def download_batch_results(self, job: JobRef, output_file: str | os.PathLike[str]) -> Path:
        """Write the job's ``predictions.jsonl`` (every shard, in order) to ``output_file``."""
        path = Path(output_file)
        data = self._predictions(job)
        sync_run_blocking(_gcs.write_file, path, data)
        return path

    def iter_batch_results(self, job: JobRef) -> Iterator[BatchResult]:
        """``(request_id, response, error)`` for every prediction line of a finished job:
        ``response`` is a ``GenerateContentResponse`` and ``error`` None, or the other way
        round for a request the service could not answer. ``response.parsed`` is filled as
        google-genai fills it when the request asked for a response schema (with the pydantic
        class itself for jobs this object created)."""
        data = self._predictions(job)
        schemas = self._schemas.get(_name(job))
        for raw in data.decode().splitlines():
            if raw.strip():
                yield parse_prediction(raw, schemas)

    # -- internals --------------------------------------------------------------------------

    def _storage_client(self) -> Any:
        if self._storage is None:
            self._storage = sync_run_blocking(
                _gcs.make_client, self.config.project_id, self._client.credentials
            )
        return self._storage

    def _bucket_name(self, bucket_name: str | None, fallback: str | None = None) -> str:
        bucket = bucket_name or fallback or self.config.batch_gcs_bucket or self.config.gcs_bucket
        if not bucket:
            raise ConfigError(
                "batch_gcs_bucket",
                "no Cloud Storage bucket for batch input and output; pass bucket_name= or set "
                "batch_gcs_bucket (BATCH_GCS_BUCKET) in the config",
            )
        if bucket.startswith(_gcs.GCS_SCHEME):
            bucket = _gcs.parse_gcs_uri(bucket)[0]
        return bucket

    def _bucket(self, bucket_name: str | None) -> str:
        """The bucket to use, checked to exist (once per bucket)."""
        bucket = self._bucket_name(bucket_name)
        if bucket not in self._buckets_seen:
            storage = self._storage_client()
            sync_run_blocking(_gcs.require_bucket, storage, bucket)
            self._buckets_seen.add(bucket)
        return bucket

    def _lines(self, batch_requests: BatchRequests, model: str) -> list[dict[str, Any]]:
        if isinstance(batch_requests, (str, os.PathLike)):
            text = sync_run_blocking(_gcs.read_file, Path(batch_requests))
            return lines_from_jsonl(text, model)
        return request_lines(batch_requests, model)

    def _predictions(self, job: JobRef) -> bytes:
        current = self.get_batch_job(job)
        location = None
        if current.output_info is not None:
            location = current.output_info.gcs_output_directory
        if not location and current.dest is not None:
            location = current.dest.gcs_uri
        if not location:
            raise BatchResultsNotFoundError(
                _name(current), "(no output location)", job_state(current)
            )
        bucket, prefix = _gcs.parse_gcs_uri(location)
        storage = self._storage_client()
        names = sync_run_blocking(
            _gcs.list_names, storage, bucket, f"{prefix.rstrip('/')}/" if prefix else ""
        )
        files = prediction_files(names)
        if not files:
            raise BatchResultsNotFoundError(_name(current), location, job_state(current))
        chunks = [sync_run_blocking(_gcs.download_bytes, storage, bucket, name) for name in files]
        return b"".join(chunk if chunk.endswith(b"\n") else chunk + b"\n" for chunk in chunks)
