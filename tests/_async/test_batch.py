"""The batch client against the Vertex AI and Cloud Storage emulators, end to end.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from google.genai import types

from greycloud import (
    BatchInputError,
    BatchJobFailedError,
    BatchResultsNotFoundError,
    BucketNotFoundError,
    ConfigError,
    GreyCloudAsyncBatch,
)
from greycloud.testing import VertexEmulator
from greycloud.testing.gcs import GcsEmulator

BUCKET = "greycloud-batch-tests"
MISSING_CACHE = "projects/test-project/locations/us-central1/cachedContents/404"


@pytest.fixture
def gcs(vertex_emulator: VertexEmulator, gcs_emulator: GcsEmulator) -> GcsEmulator:
    vertex_emulator.gcs_endpoint = gcs_emulator.endpoint
    vertex_emulator.batch_step = 0.05
    gcs_emulator.create_bucket(BUCKET)
    return gcs_emulator


@pytest.fixture
async def batch(
    vertex_emulator: VertexEmulator, gcs: GcsEmulator
) -> AsyncIterator[GreyCloudAsyncBatch]:
    config = vertex_emulator.config(batch_gcs_bucket=BUCKET, batch_poll_interval=0.02)
    async with GreyCloudAsyncBatch(
        config, credentials=vertex_emulator.credentials, storage_client=gcs.client()
    ) as batch:
        yield batch


def batch_calls(emulator: VertexEmulator) -> list[Any]:
    return [r for r in emulator.requests() if "batchPredictionJobs" in r.path]


def mixed_requests() -> list[Any]:
    """60 requests in every accepted form; the last two name a cache that does not exist."""
    requests: list[Any] = [{"key": f"dict-{i}", "contents": f"Question {i}?"} for i in range(20)]
    requests += [
        types.InlinedRequest(
            contents=f"Inlined question {i}?",
            metadata={"key": f"inlined-{i}"},
            config=types.GenerateContentConfig(
                temperature=0.2, max_output_tokens=50, system_instruction="Be brief."
            ),
        )
        for i in range(20)
    ]
    requests += [
        {
            "key": f"line-{i}",
            "source": "prepared",
            "request": {
                "contents": [{"role": "user", "parts": [{"text": f"Line question {i}?"}]}],
                "generationConfig": {"maxOutputTokens": 40},
            },
        }
        for i in range(18)
    ]
    requests += [
        {"key": f"broken-{i}", "contents": "Uses a cache.", "cachedContent": MISSING_CACHE}
        for i in range(2)
    ]
    return requests


async def test_batch_end_to_end(
    batch: GreyCloudAsyncBatch, gcs: GcsEmulator, tmp_path: Path
) -> None:
    requests = mixed_requests()
    job = await batch.create_batch_job(requests)
    assert job.name and job.state == types.JobState.JOB_STATE_PENDING

    # The input went to Cloud Storage as Vertex AI GenerateContentRequest JSONL.
    [input_uri] = gcs.object_names()
    lines = [json.loads(row) for row in gcs.read(input_uri).decode().splitlines()]
    assert len(lines) == 60
    assert lines[0] == {
        "key": "dict-0",
        "request": {"contents": [{"role": "user", "parts": [{"text": "Question 0?"}]}]},
    }
    inlined = lines[20]["request"]
    assert inlined["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 50}
    assert inlined["systemInstruction"] == {"role": "user", "parts": [{"text": "Be brief."}]}
    assert lines[40]["source"] == "prepared"

    seen: list[str] = []
    done = await batch.monitor_batch_job(job, callback=lambda j: seen.append(_state(j)))
    assert seen[-2:] == ["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    assert done.completion_stats is not None
    assert done.completion_stats.successful_count == 58
    assert done.completion_stats.failed_count == 2

    path = await batch.download_batch_results(done, tmp_path / "results" / "predictions.jsonl")
    predictions = [json.loads(row) for row in path.read_text().splitlines()]
    assert len(predictions) == 60
    assert {p["source"] for p in predictions if p["key"].startswith("line-")} == {"prepared"}

    results = {result.request_id: result async for result in batch.iter_batch_results(done)}
    assert set(results) == {line["key"] for line in lines}
    for key, result in results.items():
        if key.startswith("broken-"):
            assert result.response is None
            assert result.error is not None and "not found" in result.error.lower()
        else:
            assert result.error is None and result.response is not None
            assert result.response.text

    # The same request answered online gets the same deterministic answer.
    online = await batch.client.generate_content("Question 7?")
    answer = results["dict-7"].response
    assert answer is not None and answer.text == online.text


class Capital(pydantic.BaseModel):
    country: str
    capital: str
    population: int


async def test_a_pydantic_response_schema_survives_a_batch_job(
    batch: GreyCloudAsyncBatch, gcs: GcsEmulator
) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=Capital
    )
    requests: list[Any] = [
        types.InlinedRequest(contents=f"Capital {i}?", config=config, metadata={"key": f"c{i}"})
        for i in range(3)
    ]
    requests.append({"key": "as-dict", "contents": "Capital?", "config": config})
    job = await batch.create_batch_job(requests)

    [input_uri] = gcs.object_names()
    line = json.loads(gcs.read(input_uri).decode().splitlines()[0])
    schema = line["request"]["generationConfig"]["responseSchema"]
    assert set(schema["properties"]) == {"country", "capital", "population"}

    done = await batch.monitor_batch_job(job)
    results = [result async for result in batch.iter_batch_results(done)]
    assert len(results) == 4
    for result in results:
        assert result.response is not None
        assert isinstance(result.response.parsed, Capital)
        assert result.response.parsed == Capital.model_validate_json(result.response.text or "")

    # Another batch object (e.g. a later process) only has the JSON schema: parsed is JSON.
    async with GreyCloudAsyncBatch(client=batch.client, storage_client=gcs.client()) as later:
        [first, *_] = [result async for result in later.iter_batch_results(done)]
    assert first.response is not None and isinstance(first.response.parsed, dict)
    assert set(first.response.parsed) == {"country", "capital", "population"}


async def test_jsonl_file_input(batch: GreyCloudAsyncBatch, tmp_path: Path) -> None:
    source = tmp_path / "requests.jsonl"
    rows = [
        {"key": "a", "contents": "First?"},
        {"key": "b", "request": {"contents": [{"role": "user", "parts": [{"text": "Second?"}]}]}},
        {"contents": "Third?", "generation_config": {"max_output_tokens": 30}},
    ]
    source.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    job = await batch.create_batch_job(str(source))
    await batch.monitor_batch_job(job)
    ids = [result.request_id async for result in batch.iter_batch_results(job)]
    assert sorted(ids) == ["a", "b", "request-2"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"contents": []}, "contents is empty"),
        ({"contnts": "Hello"}, "unknown field 'contnts'"),
        ({"contents": "Hi", "generationConfig": {"temperature": "hot"}}, "temperature"),
        ({"contents": "Hi", "config": {"http_options": None, "seed": "x"}}, "seed"),
        ({"key": "dict-0", "contents": "Hi"}, "already used at index 0"),
        (42, "InlinedRequest or a dict"),
    ],
)
async def test_bad_requests_are_rejected_before_upload(
    batch: GreyCloudAsyncBatch,
    gcs: GcsEmulator,
    vertex_emulator: VertexEmulator,
    bad: Any,
    reason: str,
) -> None:
    requests = [{"key": "dict-0", "contents": "Fine."}, {"contents": "Also fine."}, bad]
    with pytest.raises(BatchInputError) as caught:
        await batch.create_batch_job(requests)
    assert caught.value.position == 2
    assert reason in caught.value.reason
    assert "index 2" in str(caught.value)
    assert gcs.object_names() == []
    assert batch_calls(vertex_emulator) == []


async def test_bad_jsonl_line_is_reported_by_number(
    batch: GreyCloudAsyncBatch, gcs: GcsEmulator, vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    source = tmp_path / "requests.jsonl"
    source.write_text('{"contents": "One?"}\n\n{"contents": "Two?"\n')
    with pytest.raises(BatchInputError, match="line 3: not valid JSON") as caught:
        await batch.upload_batch_requests_to_gcs(source)
    assert caught.value.position == 3 and caught.value.line
    assert gcs.object_names() == []
    assert batch_calls(vertex_emulator) == []


async def test_missing_bucket_is_named(vertex_emulator: VertexEmulator, gcs: GcsEmulator) -> None:
    config = vertex_emulator.config(batch_gcs_bucket=None, gcs_bucket=None)
    async with GreyCloudAsyncBatch(
        config, credentials=vertex_emulator.credentials, storage_client=gcs.client()
    ) as batch:
        with pytest.raises(ConfigError, match="batch_gcs_bucket"):
            await batch.create_batch_job([{"contents": "Hi"}])
        with pytest.raises(BucketNotFoundError, match="no-such-bucket") as caught:
            await batch.create_batch_job([{"contents": "Hi"}], bucket_name="no-such-bucket")
        assert caught.value.bucket == "no-such-bucket"
    assert gcs.object_names() == []
    assert batch_calls(vertex_emulator) == []


async def test_failed_job_raises_with_its_error(batch: GreyCloudAsyncBatch) -> None:
    missing = f"gs://{BUCKET}/nowhere/input.jsonl"
    job = await batch.create_batch_job(missing)
    with pytest.raises(BatchJobFailedError) as caught:
        await batch.monitor_batch_job(job)
    assert caught.value.state == "JOB_STATE_FAILED"
    assert missing in str(caught.value)


async def test_cancelled_job(batch: GreyCloudAsyncBatch, vertex_emulator: VertexEmulator) -> None:
    vertex_emulator.batch_step = 5.0
    job = await batch.create_batch_job([{"contents": "Never mind."}])
    await batch.cancel_batch_job(job)
    with pytest.raises(BatchResultsNotFoundError):
        await batch.download_batch_results(job, "unused.jsonl")
    vertex_emulator.batch_step = 0.01
    with pytest.raises(BatchJobFailedError) as caught:
        await batch.monitor_batch_job(job)
    assert caught.value.state == "JOB_STATE_CANCELLED"


async def test_upload_helpers(batch: GreyCloudAsyncBatch, gcs: GcsEmulator, tmp_path: Path) -> None:
    text_uri = await batch.upload_string_to_gcs("hello", "notes/hello.txt")
    assert text_uri == f"gs://{BUCKET}/notes/hello.txt"
    assert gcs.read(text_uri) == b"hello"

    files = []
    for name in ("a.txt", "b.md", "c.jsonl"):
        path = tmp_path / name
        path.write_text(f"content of {name}")
        files.append(path)
    one = await batch.upload_file_to_gcs(files[0], blob_name="single/a.txt")
    assert gcs.read(one) == b"content of a.txt"
    uris = await batch.upload_files_to_gcs(files, prefix="many/")
    assert uris == [f"gs://{BUCKET}/many/{name}" for name in ("a.txt", "b.md", "c.jsonl")]
    assert [gcs.read(uri) for uri in uris] == [f"content of {p.name}".encode() for p in files]
    # The type comes from the name, also for types the standard library does not know.
    jsonl = gcs.client().bucket(BUCKET).get_blob("many/c.jsonl")
    assert jsonl.content_type == "application/jsonl"

    requests_uri = await batch.upload_batch_requests_to_gcs(
        [{"contents": "Hi"}], blob_name="prepared/input.jsonl"
    )
    assert json.loads(gcs.read(requests_uri)) == {
        "key": "request-0",
        "request": {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]},
    }


def _state(job: types.BatchJob) -> str:
    return job.state.name if job.state is not None else "?"
