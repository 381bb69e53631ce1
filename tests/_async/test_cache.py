"""The cache client against the emulator: lifecycle, generation with a cache, size and MIME checks.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest
from google.genai import errors, types

from greycloud import CacheTooSmallError, ConfigError, GreyCloudAsyncCache, GreyCloudAsyncClient
from greycloud.testing import Fault, VertexEmulator

MODEL = "gemini-2.5-flash"
# About 2,600 tokens at the emulator's four characters a token: above Vertex AI's 2,048.
LONG_TEXT = "The reference manual explains every setting in detail. " * 190


@pytest.fixture
async def cache(vertex_emulator: VertexEmulator) -> AsyncIterator[GreyCloudAsyncCache]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, max_concurrency=64)
    async with GreyCloudAsyncCache(config, credentials=vertex_emulator.credentials) as cache:
        yield cache


def camel(value: Any) -> Any:
    """``value`` with camelCase keys (the SDK sends some nested fields in snake_case)."""
    if isinstance(value, dict):
        return {
            "".join(w if i == 0 else w.title() for i, w in enumerate(k.split("_"))): camel(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [camel(item) for item in value]
    return value


def calls(emulator: VertexEmulator, fragment: str, method: str | None = None) -> list[Any]:
    return [
        r
        for r in emulator.requests()
        if fragment in r.path and (method is None or r.method == method)
    ]


async def test_cache_lifecycle(cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator) -> None:
    created = await cache.create_cache_from_text(LONG_TEXT, display_name="manual")
    assert created.name and created.usage_metadata is not None
    cached_tokens = created.usage_metadata.total_token_count
    assert cached_tokens is not None and cached_tokens >= 2048
    assert len(calls(vertex_emulator, ":countTokens")) == 1

    response = await cache.generate_with_cache(created.name, "What does the manual cover?")
    assert response.text
    assert response.usage_metadata is not None
    assert response.usage_metadata.cached_content_token_count == cached_tokens
    generate = calls(vertex_emulator, ":generateContent")[-1]
    assert generate.body["cachedContent"] == created.name
    assert f"/models/{MODEL}:generateContent" in generate.path

    before = created.expire_time
    updated = await cache.update_cache_ttl(created.name, ttl_seconds=7200)
    assert calls(vertex_emulator, "cachedContents/", "PATCH")[-1].body == {"ttl": "7200s"}
    assert before is not None and updated.expire_time is not None
    assert updated.expire_time > before

    assert [c.name for c in await cache.list_caches()] == [created.name]
    info = await cache.get_cache_info(created.name)
    assert info["display_name"] == "manual"
    assert info["total_token_count"] == cached_tokens
    assert 3600 < info["ttl_remaining_seconds"] <= 7200

    await cache.delete_cache(created.name)
    assert await cache.list_caches() == []


async def test_stream_with_cache_matches_the_answer(cache: GreyCloudAsyncCache) -> None:
    created = await cache.create_cache([{"role": "user", "parts": [{"text": LONG_TEXT}]}])
    assert created.name
    whole = await cache.generate_with_cache(created.name, "Summarise it.")
    pieces = [
        piece async for piece in cache.generate_with_cache_stream(created.name, "Summarise it.")
    ]
    assert len(pieces) > 1
    assert "".join(str(piece) for piece in pieces) == whole.text


async def test_a_cache_stream_takes_both_forms_and_sends_nothing_until_read(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator
) -> None:
    created = await cache.create_cache([{"role": "user", "parts": [{"text": LONG_TEXT}]}])
    assert created.name
    sent = len(calls(vertex_emulator, ":streamGenerateContent"))
    unread = cache.generate_with_cache_stream(created.name, "Summarise it.", MODEL)
    assert len(calls(vertex_emulator, ":streamGenerateContent")) == sent
    await unread.aclose()
    awaited = await cache.generate_with_cache_stream(created.name, "Summarise it.", MODEL)
    chunks = [piece async for piece in awaited]
    assert "".join(chunks) and len(calls(vertex_emulator, ":streamGenerateContent")) == sent + 1


class Summary(pydantic.BaseModel):
    title: str
    points: list[str]


async def test_structured_output_and_config_with_a_cache(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator
) -> None:
    created = await cache.create_cache([{"role": "user", "parts": [{"text": LONG_TEXT}]}])
    assert created.name
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=Summary, temperature=0.4
    )
    response = await cache.generate_with_cache(created.name, "Summarise it.", config=config)
    assert isinstance(response.parsed, Summary)
    sent = camel(calls(vertex_emulator, ":generateContent")[-1].body)
    assert sent["generationConfig"]["temperature"] == 0.4
    assert set(sent["generationConfig"]["responseSchema"]["properties"]) == {"title", "points"}
    assert sent["cachedContent"] == created.name


async def test_too_small_cache_is_rejected_before_it_is_created(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator
) -> None:
    with pytest.raises(CacheTooSmallError) as caught:
        await cache.create_cache("A short note.", system_instruction="Be brief.")
    assert caught.value.minimum == 2048
    assert 0 < caught.value.tokens < 2048
    assert str(caught.value.tokens) in str(caught.value) and "2048" in str(caught.value)
    assert calls(vertex_emulator, "cachedContents") == []
    assert len(calls(vertex_emulator, ":countTokens")) == 1


async def test_mime_types_are_guessed_from_file_names(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator
) -> None:
    uris = ["gs://docs/report.pdf", "gs://docs/photo.PNG", "gs://docs/notes.txt"]
    await cache.create_cache_from_files(uris, system_instruction=LONG_TEXT)
    body = camel(calls(vertex_emulator, "cachedContents", "POST")[-1].body)
    parts = body["contents"][0]["parts"]
    assert [p["fileData"]["fileUri"] for p in parts] == uris
    assert [p["fileData"]["mimeType"] for p in parts] == [
        "application/pdf",
        "image/png",
        "text/plain",
    ]

    await cache.create_cache_from_files(
        ["gs://docs/blob"], mime_types=["video/mp4"], system_instruction=LONG_TEXT
    )
    part = camel(calls(vertex_emulator, "cachedContents", "POST")[-1].body)["contents"][0]["parts"][
        0
    ]
    assert part["fileData"]["mimeType"] == "video/mp4"


@pytest.mark.parametrize("uri", ["gs://docs/blob", "gs://docs/data.nosuchext"])
async def test_unknown_mime_type_fails_before_any_call(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator, uri: str
) -> None:
    with pytest.raises(ConfigError, match="mime_types") as caught:
        await cache.create_cache_from_files(["gs://docs/report.pdf", uri])
    assert uri in str(caught.value)
    assert vertex_emulator.requests() == []


async def test_file_uris_must_be_cloud_storage(cache: GreyCloudAsyncCache) -> None:
    with pytest.raises(ConfigError, match="gs://"):
        await cache.create_cache_from_files(["/tmp/report.pdf"])


async def test_update_ttl_takes_exactly_one_of_ttl_and_expire_time(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator
) -> None:
    created = await cache.create_cache_from_text(LONG_TEXT)
    assert created.name
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=3)
    with pytest.raises(ConfigError, match="exactly one"):
        await cache.update_cache_ttl(created.name)
    with pytest.raises(ConfigError, match="exactly one"):
        await cache.update_cache_ttl(created.name, ttl_seconds=60, expire_time=later)
    with pytest.raises(ConfigError, match="time zone"):
        await cache.update_cache_ttl(created.name, expire_time=later.replace(tzinfo=None))
    with pytest.raises(ConfigError, match="not an RFC 3339 time"):
        await cache.update_cache_ttl(created.name, expire_time="tomorrow")
    updated = await cache.update_cache_ttl(created.name, expire_time=later)
    assert "expireTime" in calls(vertex_emulator, "cachedContents/", "PATCH")[-1].body
    assert updated.expire_time is not None
    assert abs((updated.expire_time - later).total_seconds()) < 1


async def test_delete_all_caches_with_a_display_name_filter(cache: GreyCloudAsyncCache) -> None:
    for name in ("keep-a", "tmp-b", "tmp-c"):
        await cache.create_cache_from_text(LONG_TEXT, display_name=name)
    assert await cache.delete_all_caches(display_name_filter="tmp-") == 2
    assert [c.display_name for c in await cache.list_caches()] == ["keep-a"]
    assert await cache.delete_all_caches() == 1
    assert await cache.list_caches() == []


async def test_shares_a_clients_connection_and_limiter(vertex_emulator: VertexEmulator) -> None:
    async with GreyCloudAsyncClient(
        vertex_emulator.config(), credentials=vertex_emulator.credentials
    ) as client:
        with pytest.raises(ConfigError, match="client"):
            GreyCloudAsyncCache(vertex_emulator.config(), client=client)
        async with GreyCloudAsyncCache(client=client) as cache:
            assert cache.client is client
            assert cache.rate_limiter is client.rate_limiter
            created = await cache.create_cache_from_text(LONG_TEXT)
        # Closing the cache object leaves a client it did not create open.
        assert created.name
        response = await client.generate_content("Still open?", cached_content=created.name)
        assert response.text


async def test_expired_credentials_are_refreshed(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator
) -> None:
    created = await cache.create_cache_from_text(LONG_TEXT)
    vertex_emulator.expire_token()
    assert [c.name for c in await cache.list_caches()] == [created.name]
    assert [r.status for r in calls(vertex_emulator, "cachedContents", "GET")] == [401, 200]


async def test_caches_work_with_an_api_key(vertex_emulator: VertexEmulator) -> None:
    # Vertex AI express mode: no project in the client, so every name must be a full one.
    config = vertex_emulator.config(use_api_key=True, api_key=vertex_emulator.api_key)
    async with GreyCloudAsyncCache(config) as caches:
        created = await caches.create_cache_from_text(LONG_TEXT, display_name="keyed")
        assert created.name is not None and "None" not in created.name
        assert (await caches.get_cache(created.name)).name == created.name
        answer = await caches.generate_with_cache(created.name, "What does it explain?")
        assert answer.text
        assert await caches.delete_all_caches("keyed") == 1
        assert await caches.list_caches() == []


async def test_reads_and_deletes_are_sent_again_after_a_transient_failure(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator
) -> None:
    created = await cache.create_cache_from_text(LONG_TEXT)
    assert created.name
    vertex_emulator.inject(Fault.status(503), path="cachedContents/")
    assert (await cache.get_cache(created.name)).name == created.name
    vertex_emulator.inject(Fault.status(500), path="cachedContents/")
    await cache.delete_cache(created.name)
    statuses = [r.status for r in calls(vertex_emulator, "cachedContents/")]
    assert statuses == [503, 200, 500, 200]
    assert await cache.list_caches() == []


async def test_a_create_is_sent_again_only_when_the_service_refused_it(
    cache: GreyCloudAsyncCache, vertex_emulator: VertexEmulator
) -> None:
    # A 500 may come after the cache was made: sending the create again could make two.
    vertex_emulator.inject(Fault.status(500), path="/cachedContents")
    with pytest.raises(errors.ServerError):
        await cache.create_cache_from_text(LONG_TEXT)
    assert [r.status for r in calls(vertex_emulator, "/cachedContents", "POST")] == [500]
    # A 429 (or 503) says nothing was done: it is sent again, and one cache is made.
    vertex_emulator.inject(Fault.status(429), path="/cachedContents")
    created = await cache.create_cache_from_text(LONG_TEXT)
    assert [r.status for r in calls(vertex_emulator, "/cachedContents", "POST")] == [500, 429, 200]
    assert [c.name for c in await cache.list_caches()] == [created.name]
