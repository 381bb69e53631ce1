"""Batch behaviour that only makes sense in one world, and the emulator's batch runner itself.

Cancelling an async wait, Ctrl-C in a sync wait, the progress line, ``STORAGE_EMULATOR_HOST``,
and input lines the emulator itself must reject.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from google.genai import types

from greycloud import BatchJobFailedError, GreyCloudAsyncBatch, GreyCloudBatch
from greycloud.testing import VertexEmulator
from greycloud.testing.gcs import GcsEmulator

BUCKET = "greycloud-batch-runner"
MODEL = "gemini-2.5-flash"


@pytest.fixture
def gcs(vertex_emulator: VertexEmulator, gcs_emulator: GcsEmulator) -> Iterator[GcsEmulator]:
    vertex_emulator.gcs_endpoint = gcs_emulator.endpoint
    vertex_emulator.batch_step = 0.05
    gcs_emulator.create_bucket(BUCKET)
    yield gcs_emulator


def _batch(emulator: VertexEmulator, gcs: GcsEmulator) -> GreyCloudBatch:
    config = emulator.config(batch_gcs_bucket=BUCKET, batch_poll_interval=0.02)
    return GreyCloudBatch(config, credentials=emulator.credentials, storage_client=gcs.client())


async def test_cancelling_the_wait_leaves_the_job_running(
    vertex_emulator: VertexEmulator, gcs: GcsEmulator
) -> None:
    vertex_emulator.batch_step = 30.0
    config = vertex_emulator.config(batch_gcs_bucket=BUCKET)
    async with GreyCloudAsyncBatch(
        config, credentials=vertex_emulator.credentials, storage_client=gcs.client()
    ) as batch:
        job = await batch.create_batch_job([{"contents": "Slow one."}])
        waiting = asyncio.create_task(batch.monitor_batch_job(job, poll_interval=0.02))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        current = await batch.get_batch_job(job)
        assert current.state == types.JobState.JOB_STATE_PENDING


def test_ctrl_c_stops_a_sync_wait(vertex_emulator: VertexEmulator, gcs: GcsEmulator) -> None:
    vertex_emulator.batch_step = 30.0

    def interrupt(job: types.BatchJob) -> None:
        raise KeyboardInterrupt

    with _batch(vertex_emulator, gcs) as batch:
        job = batch.create_batch_job([{"contents": "Slow one."}])
        with pytest.raises(KeyboardInterrupt):
            batch.monitor_batch_job(job, callback=interrupt)
        assert batch.get_batch_job(job).state == types.JobState.JOB_STATE_PENDING


def test_progress_line_can_be_forced(vertex_emulator: VertexEmulator, gcs: GcsEmulator) -> None:
    with _batch(vertex_emulator, gcs) as batch:
        job = batch.create_batch_job([{"contents": "Hi"}])
        done = batch.monitor_batch_job(job, progress=True)
        assert done.state == types.JobState.JOB_STATE_SUCCEEDED


def test_the_emulator_answers_each_line_and_reports_bad_ones(
    vertex_emulator: VertexEmulator, gcs: GcsEmulator
) -> None:
    rows = [
        json.dumps(
            {"key": "good", "tag": 7, "request": {"contents": [{"parts": [{"text": "Hi"}]}]}}
        ),
        "{not json",
        json.dumps({"key": "empty", "request": {"contents": []}}),
        json.dumps({"key": "no-request"}),
    ]
    gcs.client().bucket(BUCKET).blob("raw/input.jsonl").upload_from_string("\n".join(rows))
    sdk = vertex_emulator.sdk_client()
    job = sdk.batches.create(
        model=MODEL,
        src=f"gs://{BUCKET}/raw/input.jsonl",
        config=types.CreateBatchJobConfig(dest=f"gs://{BUCKET}/raw/out"),
    )
    with _batch(vertex_emulator, gcs) as batch:
        done = batch.monitor_batch_job(job)
        assert done.output_info is not None and done.output_info.gcs_output_directory
        assert done.output_info.gcs_output_directory.startswith(
            f"gs://{BUCKET}/raw/out/prediction-model-"
        )
        lines = [
            json.loads(row)
            for row in gcs.read(done.output_info.gcs_output_directory + "/predictions.jsonl")
            .decode()
            .splitlines()
        ]
    assert [line.get("key") for line in lines] == ["good", None, "empty", "no-request"]
    good = lines[0]
    assert good["tag"] == 7 and good["status"] == ""
    assert good["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert all("INVALID_ARGUMENT" in line["status"] for line in lines[1:])
    assert "response" not in lines[2]
    assert done.completion_stats is not None and done.completion_stats.failed_count == 3


def test_storage_emulator_host_is_honoured(
    gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    gcs_emulator.create_bucket(BUCKET)
    with VertexEmulator(batch_step=0.02) as emulator:
        config = emulator.config(batch_gcs_bucket=BUCKET, batch_poll_interval=0.02)
        # No storage_client: google-cloud-storage finds the emulator through the variable too.
        with GreyCloudBatch(config, credentials=emulator.credentials) as batch:
            job = batch.create_batch_job([{"key": "only", "contents": "Hi"}])
            batch.monitor_batch_job(job)
            [result] = list(batch.iter_batch_results(job))
    assert result.request_id == "only" and result.response is not None


def test_without_cloud_storage_jobs_only_change_state(vertex_emulator: VertexEmulator) -> None:
    vertex_emulator.batch_step = 0.02
    sdk = vertex_emulator.sdk_client()
    job = sdk.batches.create(model=MODEL, src="gs://nowhere/in.jsonl")
    with GreyCloudBatch(
        vertex_emulator.config(batch_poll_interval=0.02), credentials=vertex_emulator.credentials
    ) as batch:
        done = batch.monitor_batch_job(job)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.output_info is None


def test_a_missing_input_file_fails_the_job(
    vertex_emulator: VertexEmulator, gcs: GcsEmulator
) -> None:
    with _batch(vertex_emulator, gcs) as batch:
        job = batch.create_batch_job(f"gs://{BUCKET}/absent.jsonl")
        with pytest.raises(BatchJobFailedError, match=r"absent\.jsonl") as caught:
            batch.monitor_batch_job(job)
    assert getattr(caught.value.error, "code", None) == 5
