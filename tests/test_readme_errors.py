"""Each row of the README's errors table is raised by the path the row names.

The table is read from README.md: a row without a check here fails, so the table and the code
cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import greycloud
from greycloud import GreyCloudBatch, GreyCloudCache, GreyCloudClient, GreyCloudConfig
from greycloud.testing import Fault, VertexEmulator
from greycloud.testing.gcs import GcsEmulator

README = Path(__file__).resolve().parent.parent / "README.md"
BUCKET = "errors-table-bucket"
FAST = {"base_delay": 0.01, "max_delay": 0.02}


def table_rows() -> dict[str, str]:
    """``error name -> "raised when" text`` from the table under ``## Errors``."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)`[^|]* \| (.+) \|$", section, re.MULTILINE)
    return dict(rows)


class Paths:
    """The emulators, and a client, cache and batch pointed at them."""

    def __init__(self, vertex: VertexEmulator, gcs: GcsEmulator) -> None:
        self.vertex = vertex
        self.gcs = gcs
        self.config = vertex.config(batch_gcs_bucket=BUCKET, batch_poll_interval=0.02)

    def client(self, **overrides: object) -> GreyCloudClient:
        return GreyCloudClient(
            self.config.replace(**overrides), credentials=self.vertex.credentials
        )

    def batch(self) -> GreyCloudBatch:
        return GreyCloudBatch(
            self.config, credentials=self.vertex.credentials, storage_client=self.gcs.client()
        )


@pytest.fixture
def paths(vertex_emulator: VertexEmulator, gcs_emulator: GcsEmulator) -> Iterator[Paths]:
    vertex_emulator.gcs_endpoint = gcs_emulator.endpoint
    vertex_emulator.batch_step = 0.02
    gcs_emulator.create_bucket(BUCKET)
    yield Paths(vertex_emulator, gcs_emulator)
    vertex_emulator.gcs_endpoint = None


def config_error(p: Paths) -> None:
    """A config value or a call argument is wrong."""
    with pytest.raises(greycloud.ConfigError):
        GreyCloudConfig(project_id="p", temperature=9)
    with p.client() as client:
        client.generate_content("hi", temperature=9)


def auth_error(p: Paths) -> None:
    """Rejected after a refresh (missing credentials: tests/test_auth.py)."""
    p.vertex.inject(Fault.status(401), times=2)
    with p.client() as client:
        client.generate_content("hi")


def retry_exhausted(p: Paths) -> None:
    p.vertex.inject(Fault.status(503), times=None)
    with p.client() as client:
        client.generate_with_retry("hi", max_retries=1, **FAST)


def stream_interrupted(p: Paths) -> None:
    p.vertex.set_response_text("one two three four five six seven eight nine ten " * 5)
    p.vertex.inject(Fault.cut_stream(2), times=None)
    with p.client() as client:
        for _ in client.generate_with_retry("hi", max_retries=1, streaming=True, **FAST):
            pass


def quota_exhausted(p: Paths) -> None:
    p.vertex.inject(Fault.status(429, quota_id="GenerateRequestsPerDayPerProjectPerModel"))
    with p.client() as client:
        client.generate_content("hi")


def request_too_large(p: Paths) -> None:
    with p.client(tpm=100) as client:
        client.generate_content("word " * 1000)


def limiter_storage(p: Paths) -> None:
    unreachable = "redis://127.0.0.1:1/0"
    with p.client(rate_limit_storage=unreachable) as client:
        client.generate_content("hi")


def cache_too_small(p: Paths) -> None:
    with p.client() as client, GreyCloudCache(client=client) as caches:
        caches.create_cache_from_text("too short to cache")


def batch_input(p: Paths) -> None:
    with p.batch() as batch:
        batch.create_batch_job([{"contents": "fine"}, {"not a request": True}])


def bucket_not_found(p: Paths) -> None:
    with p.batch() as batch:
        batch.create_batch_job([{"contents": "hi"}], bucket_name="no-such-bucket")


def batch_job_failed(p: Paths) -> None:
    with p.batch() as batch:
        job = batch.create_batch_job(f"gs://{BUCKET}/missing-input.jsonl")
        batch.monitor_batch_job(job)


def batch_results_not_found(p: Paths) -> None:
    p.vertex.gcs_endpoint = None  # the job only moves through its states: it writes nothing
    with p.batch() as batch:
        job = batch.monitor_batch_job(batch.create_batch_job([{"contents": "hi"}]))
        list(batch.iter_batch_results(job))


TRIGGERS: dict[str, Callable[[Paths], None]] = {
    "ConfigError": config_error,
    "AuthError": auth_error,
    "RetryExhaustedError": retry_exhausted,
    "StreamInterruptedError": stream_interrupted,
    "QuotaExhaustedError": quota_exhausted,
    "RequestTooLargeError": request_too_large,
    "LimiterStorageError": limiter_storage,
    "CacheTooSmallError": cache_too_small,
    "BatchInputError": batch_input,
    "BucketNotFoundError": bucket_not_found,
    "BatchJobFailedError": batch_job_failed,
    "BatchResultsNotFoundError": batch_results_not_found,
}


def test_every_row_of_the_table_has_a_check() -> None:
    rows = table_rows()
    assert len(rows) >= 10
    assert set(rows) == set(TRIGGERS)
    for name in rows:
        assert issubclass(getattr(greycloud, name), greycloud.GreyCloudError)


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_the_error_is_raised_by_the_path_its_row_names(name: str, paths: Paths) -> None:
    error = getattr(greycloud, name)
    with pytest.raises(error):
        TRIGGERS[name](paths)
