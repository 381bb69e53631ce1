"""The emulator's cachedContents and batchPredictionJobs routes, driven by the real SDK."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterator

import pytest
from google import genai
from google.genai import errors, types

from greycloud.testing import VertexEmulator

MODEL = "gemini-2.5-flash"

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[VertexEmulator]:
    with VertexEmulator(clock=clock, batch_step=10.0) as emulator:
        yield emulator


@pytest.fixture
async def sdk(emu: VertexEmulator) -> AsyncIterator[genai.Client]:
    client = emu.sdk_client()
    yield client
    await client.aio.aclose()
    client.close()


def make_cache(sdk: genai.Client, ttl: str = "300s") -> types.CachedContent:
    return sdk.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=["x" * 4000], system_instruction="y" * 40, ttl=ttl, display_name="doc"
        ),
    )


def test_cache_create_get_and_use(emu: VertexEmulator, sdk: genai.Client) -> None:
    cache = make_cache(sdk)
    assert cache.name and cache.name.startswith(
        "projects/test-project/locations/us-central1/cachedContents/"
    )
    assert cache.usage_metadata and cache.usage_metadata.total_token_count == 1010
    assert cache.display_name == "doc"
    assert cache.create_time and cache.expire_time
    assert cache.expire_time - cache.create_time == datetime.timedelta(seconds=300)
    assert sdk.caches.get(name=cache.name) == cache

    response = sdk.models.generate_content(
        model=MODEL, contents="hi", config=types.GenerateContentConfig(cached_content=cache.name)
    )
    usage = response.usage_metadata
    assert usage and usage.cached_content_token_count == 1010
    assert usage.prompt_token_count == 1011
    assert emu.stats()[MODEL].peak_tpm == 1011


async def test_cache_update_list_delete(sdk: genai.Client, clock: FakeClock) -> None:
    first, second, third = make_cache(sdk), make_cache(sdk), make_cache(sdk)
    assert first.name and second.name and third.name
    clock.now += 5
    updated = sdk.caches.update(
        name=first.name, config=types.UpdateCachedContentConfig(ttl="1200s")
    )
    assert updated.update_time and updated.expire_time
    assert updated.expire_time - updated.update_time == datetime.timedelta(seconds=1200)
    moment = datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC)
    by_time = await sdk.aio.caches.update(
        name=second.name, config=types.UpdateCachedContentConfig(expire_time=moment)
    )
    assert by_time.expire_time == moment

    pager = sdk.caches.list(config=types.ListCachedContentsConfig(page_size=2))
    assert len(pager.page) == 2
    assert [c.name for c in pager] == [first.name, second.name, third.name]

    sdk.caches.delete(name=third.name)
    with pytest.raises(errors.ClientError) as caught:
        sdk.caches.get(name=third.name)
    assert caught.value.code == 404
    assert len([cache async for cache in await sdk.aio.caches.list()]) == 2


def test_expired_or_missing_cache_is_404(sdk: genai.Client, clock: FakeClock) -> None:
    cache = make_cache(sdk, ttl="60s")
    assert cache.name
    clock.now += 60
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(
            model=MODEL,
            contents="hi",
            config=types.GenerateContentConfig(cached_content=cache.name),
        )
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    with pytest.raises(errors.ClientError):
        sdk.caches.get(name=cache.name)
    assert list(sdk.caches.list()) == []


def test_batch_job_states_advance(sdk: genai.Client, clock: FakeClock) -> None:
    job = sdk.batches.create(
        model=MODEL,
        src="gs://bucket/input.jsonl",
        config=types.CreateBatchJobConfig(dest="gs://bucket/output", display_name="nightly"),
    )
    assert job.name and job.name.rsplit("/", 1)[1].isdigit()
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.src and job.src.gcs_uri == ["gs://bucket/input.jsonl"]
    assert job.dest and job.dest.gcs_uri == "gs://bucket/output"
    assert job.display_name == "nightly"

    clock.now += 10
    running = sdk.batches.get(name=job.name)
    assert running.state == types.JobState.JOB_STATE_RUNNING and running.start_time
    clock.now += 10
    done = sdk.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time

    with pytest.raises(errors.ClientError) as caught:
        sdk.batches.cancel(name=job.name)
    assert caught.value.code == 400


async def test_batch_cancel_list_delete(sdk: genai.Client, clock: FakeClock) -> None:
    jobs = [
        await sdk.aio.batches.create(model=MODEL, src=f"gs://bucket/in{n}.jsonl") for n in range(3)
    ]
    names = [job.name for job in jobs]
    assert all(names)
    sdk.batches.cancel(name=str(names[0]))
    assert sdk.batches.get(name=str(names[0])).state == types.JobState.JOB_STATE_CANCELLING
    clock.now += 10
    assert sdk.batches.get(name=str(names[0])).state == types.JobState.JOB_STATE_CANCELLED

    pager = sdk.batches.list(config=types.ListBatchJobsConfig(page_size=2))
    assert len(pager.page) == 2
    assert [job.name for job in pager] == names

    deleted = sdk.batches.delete(name=str(names[1]))
    assert deleted.done
    with pytest.raises(errors.ClientError) as caught:
        await sdk.aio.batches.get(name=str(names[1]))
    assert caught.value.code == 404


def test_reset_forgets_resources(emu: VertexEmulator, sdk: genai.Client) -> None:
    make_cache(sdk)
    sdk.batches.create(model=MODEL, src="gs://bucket/in.jsonl")
    emu.reset()
    assert list(sdk.caches.list()) == [] and list(sdk.batches.list()) == []


def test_a_cache_made_with_an_api_key_can_be_read_and_deleted(emu: VertexEmulator) -> None:
    # Vertex AI express mode: the SDK has no project, so it must be given the full name.
    sdk = emu.sdk_client(api_key=True)
    cache = make_cache(sdk)
    assert cache.name and cache.name.startswith(
        f"projects/{emu.project}/locations/{emu.location}/cachedContents/"
    )
    assert sdk.caches.get(name=cache.name).name == cache.name
    assert [listed.name for listed in sdk.caches.list()] == [cache.name]
    sdk.caches.delete(name=cache.name)
    assert list(sdk.caches.list()) == []


def test_a_job_due_to_run_is_cancelled_as_status_shows_it(
    emu: VertexEmulator, sdk: genai.Client, clock: FakeClock
) -> None:
    emu.gcs_endpoint = "http://127.0.0.1:9"  # a runner is set up; the run itself cannot read
    job = sdk.batches.create(model=MODEL, src="gs://bucket/in.jsonl")
    clock.now += 25  # past RUNNING's step, never polled: the run has not started yet
    sdk.batches.cancel(name=str(job.name))  # RUNNING, as a status would say, so it may stop
    state = sdk.batches.get(name=str(job.name)).state
    assert state == types.JobState.JOB_STATE_CANCELLING
