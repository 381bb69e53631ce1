"""Running a batch prediction job: input JSONL from Cloud Storage in, ``predictions.jsonl`` out.

A job runs once, in a worker thread, when it is first seen RUNNING. Each input line
``{"request": {...}, ...}`` is answered as generateContent would answer it (the same
deterministic text), and its prediction line carries the input line's other fields, the
request, the ``response`` and a ``status`` (empty on success, the error for a line that could not
be answered), as Vertex AI writes them. The output goes to
``<outputUriPrefix>/prediction-model-<time>/predictions.jsonl``.

Cloud Storage is reached through google-cloud-storage at the endpoint the emulator was given
(``VertexEmulator(gcs_endpoint=...)``) or, failing that, ``STORAGE_EMULATOR_HOST``. With
neither, jobs only move through their states and nothing is read or written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._rpc import ResourceError, error_body
from .gcs import anonymous_client

logger = logging.getLogger("greycloud.emulator")

PREDICTIONS_FILE = "predictions.jsonl"
_NOT_FOUND = 5  # google.rpc.Code
_INVALID_ARGUMENT = 3


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: ``error`` (a google.rpc.Status dict) when the whole job failed."""

    error: dict[str, Any] | None = None
    output_directory: str | None = None
    succeeded: int = 0
    failed: int = 0


def gcs_endpoint(configured: str | None) -> str | None:
    """The GCS endpoint to use: the configured one, else ``STORAGE_EMULATOR_HOST``."""
    endpoint = configured or os.environ.get("STORAGE_EMULATOR_HOST")
    if not endpoint:
        return None
    return endpoint if "://" in endpoint else f"http://{endpoint}"


def _status(error: ResourceError) -> str:
    return json.dumps(error_body(error.code, error.message))


def _split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://"):
        raise ResourceError(400, f"Invalid Cloud Storage URI {uri!r}.")
    bucket, _, name = uri[len("gs://") :].partition("/")
    return bucket, name


class BatchRunner:
    """Runs jobs against Cloud Storage; ``answer(model, request)`` produces each response."""

    def __init__(
        self,
        answer: Callable[[str, Any], dict[str, Any]],
        endpoint: Callable[[], str | None],
    ) -> None:
        self._answer = answer
        self._endpoint = endpoint

    def enabled(self) -> bool:
        return gcs_endpoint(self._endpoint()) is not None

    def run(self, body: dict[str, Any], project: str, folder: str) -> RunOutcome:
        """Run the job described by ``body`` (its create request); never raises."""
        try:
            return self._run(body, project, folder)
        except ResourceError as exc:
            return RunOutcome(error={"code": exc.code, "message": exc.message})
        except Exception as exc:
            logger.exception("the emulator's batch run failed")
            return RunOutcome(error={"code": 13, "message": f"Internal error: {exc}"})

    def _run(self, body: dict[str, Any], project: str, folder: str) -> RunOutcome:
        from google.api_core import exceptions

        source = body.get("inputConfig") or {}
        destination = body.get("outputConfig") or {}
        if source.get("instancesFormat", "jsonl") != "jsonl":
            return RunOutcome(error={"code": _INVALID_ARGUMENT, "message": "Only jsonl input."})
        uris = (source.get("gcsSource") or {}).get("uris") or []
        prefix = (destination.get("gcsDestination") or {}).get("outputUriPrefix")
        if not uris or not prefix:
            return RunOutcome(
                error={
                    "code": _INVALID_ARGUMENT,
                    "message": "The emulator runs jobs with gcsSource input and gcsDestination "
                    "output only.",
                }
            )
        model = str(body.get("model", "")).rsplit("/", 1)[-1]
        storage = anonymous_client(project, gcs_endpoint(self._endpoint()))
        rows: list[str] = []
        for uri in [uris] if isinstance(uris, str) else uris:
            bucket, name = _split_uri(uri)
            try:
                text = storage.bucket(bucket).blob(name).download_as_bytes().decode()
            except exceptions.NotFound:
                return RunOutcome(
                    error={"code": _NOT_FOUND, "message": f"Failed to read input file {uri}."}
                )
            rows.extend(row for row in text.splitlines() if row.strip())

        lines = [self._predict(model, row) for row in rows]
        failed = sum(1 for line in lines if line["status"])
        out_bucket, out_path = _split_uri(prefix.rstrip("/"))
        directory = "/".join(part for part in (out_path, folder) if part)
        try:
            storage.bucket(out_bucket).blob(f"{directory}/{PREDICTIONS_FILE}").upload_from_string(
                "".join(json.dumps(line) + "\n" for line in lines),
                content_type="application/jsonl",
            )
        except exceptions.NotFound:
            return RunOutcome(
                error={"code": _NOT_FOUND, "message": f"Output bucket {out_bucket} not found."}
            )
        return RunOutcome(
            output_directory=f"gs://{out_bucket}/{directory}",
            succeeded=len(lines) - failed,
            failed=failed,
        )

    def _predict(self, model: str, row: str) -> dict[str, Any]:
        try:
            line = json.loads(row)
        except ValueError:
            error = ResourceError(400, "Invalid JSON payload in the input line.")
            return {"request": row, "status": _status(error)}
        if not isinstance(line, dict):
            error = ResourceError(400, "The input line must be a JSON object.")
            return {"request": line, "status": _status(error)}
        request = line.get("request")
        prediction = {key: value for key, value in line.items() if key != "request"}
        prediction["request"] = request
        try:
            prediction["response"] = self._answer(model, request)
            prediction["status"] = ""
        except ResourceError as exc:
            prediction["status"] = _status(exc)
        return prediction
