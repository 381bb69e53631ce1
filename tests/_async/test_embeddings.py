"""``embed_content``, checked on what reached a real server (the emulator, over HTTP).

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.genai import errors, types

from greycloud import ConfigError, GreyCloudAsyncClient, QuotaExhaustedError
from greycloud.testing import Fault, RequestRecord, VertexEmulator

GEMINI = "gemini-embedding-001"
TEXT_MODEL = "text-embedding-005"
DIMENSIONS = 8


@pytest.fixture
async def client(vertex_emulator: VertexEmulator) -> AsyncIterator[GreyCloudAsyncClient]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, max_concurrency=16)
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


def embedding_calls(emulator: VertexEmulator) -> list[RequestRecord]:
    return [r for r in emulator.requests() if "embed" in r.path.lower() or ":predict" in r.path]


def texts_sent(record: RequestRecord) -> list[str]:
    """The input texts of one request, whichever route it took."""
    body = record.body
    assert isinstance(body, dict)
    if "instances" in body:
        return [instance["content"] for instance in body["instances"]]
    requests = body.get("requests", [body])
    return ["".join(p["text"] for p in r["content"]["parts"]) for r in requests]


def vectors(response: types.EmbedContentResponse) -> list[list[float]]:
    return [list(e.values or []) for e in response.embeddings or []]


async def test_a_thousand_texts_go_in_several_requests_and_come_back_in_order(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    texts = [f"passage number {i}" for i in range(1_000)]
    response = await client.embed_content(texts, output_dimensionality=DIMENSIONS)

    calls = embedding_calls(vertex_emulator)
    assert [texts_sent(call) for call in calls] != []
    assert all(call.model == GEMINI and call.status == 200 for call in calls)
    assert len(calls) == 10  # 100 inputs a request for gemini-embedding-001
    sent = sorted((texts_sent(call) for call in calls), key=lambda batch: texts.index(batch[0]))
    assert [text for batch in sent for text in batch] == texts
    got = vectors(response)
    assert len(got) == 1_000 and all(len(v) == DIMENSIONS for v in got)
    assert len({tuple(v) for v in got}) == 1_000  # one distinct vector per text
    # The same texts reversed come back as the same vectors reversed: order follows input.
    backwards = await client.embed_content(texts[::-1], output_dimensionality=DIMENSIONS)
    assert vectors(backwards)[::-1] == got
    statistics = [e.statistics for e in response.embeddings or []]
    assert all(s is not None and s.token_count for s in statistics)


async def test_a_429_in_the_middle_is_retried_and_the_result_is_complete(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    texts = [f"item {i}" for i in range(1_000)]
    expected = vectors(await client.embed_content(texts, output_dimensionality=DIMENSIONS))
    vertex_emulator.reset()
    vertex_emulator.inject(
        Fault.status(429, retry_delay=0.05),
        match=lambda record: "item 500" in texts_sent(record),
    )
    retries: list[int] = []

    response = await client.embed_content(
        texts,
        output_dimensionality=DIMENSIONS,
        on_retry=lambda attempt, error, delay: retries.append(attempt),
    )

    assert vectors(response) == expected
    assert retries == [1]
    calls = embedding_calls(vertex_emulator)
    assert [c.status for c in calls].count(429) == 1 and len(calls) == 11
    assert vertex_emulator.stats()[GEMINI].rejected == 1
    assert client.rate_limiter.stats().models[GEMINI].rate_limited == 1


async def test_each_request_is_limited_under_the_embedding_models_own_key(
    vertex_emulator: VertexEmulator,
) -> None:
    config = vertex_emulator.config(
        rpm=100_000, tpm=100_000_000, model_limits={TEXT_MODEL: {"rpm": 600, "tpm": 50_000}}
    )
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        await client.embed_content([f"t{i}" for i in range(300)], TEXT_MODEL)
        stats = client.rate_limiter.stats()
    assert set(stats.models) == {TEXT_MODEL}
    # The model's own limits, not the defaults (a little under them: clock margin and token slack).
    assert stats.models[TEXT_MODEL].rpm == pytest.approx(600, rel=0.03)
    assert stats.models[TEXT_MODEL].tpm == pytest.approx(50_000, rel=0.03)
    assert [len(texts_sent(c)) for c in embedding_calls(vertex_emulator)] in ([250, 50], [50, 250])


async def test_text_models_are_split_by_inputs_and_by_tokens(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    # 2,000-token inputs: at most 10 fit in the 20,000 tokens a text-embedding request takes.
    long_texts = [f"{i:04d}" + "x" * 7_996 for i in range(25)]
    response = await client.embed_content(long_texts, TEXT_MODEL, output_dimensionality=4)

    calls = embedding_calls(vertex_emulator)
    assert all(":predict" in c.path and c.status == 200 for c in calls)
    assert sorted(len(texts_sent(c)) for c in calls) == [5, 10, 10]
    assert len(response.embeddings or []) == 25
    assert response.metadata is not None
    assert response.metadata.billable_character_count == 25 * 8_000


async def test_the_gemini_api_takes_a_hundred_inputs_a_request(
    vertex_emulator: VertexEmulator,
) -> None:
    config = vertex_emulator.config(
        vertexai=False, use_api_key=True, api_key=vertex_emulator.api_key, api_version="v1beta"
    )
    async with GreyCloudAsyncClient(config) as client:
        response = await client.embed_content(
            [f"q{i}" for i in range(250)], task_type="retrieval_query", output_dimensionality=4
        )
    calls = embedding_calls(vertex_emulator)
    assert all(c.path.startswith("/v1beta/models/") for c in calls)
    assert sorted(len(texts_sent(c)) for c in calls) == [50, 100, 100]
    first = calls[0].body
    assert isinstance(first, dict) and first["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert len(response.embeddings or []) == 250


async def test_keyword_arguments_win_over_config_which_is_left_unchanged(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    config = types.EmbedContentConfig(task_type="CLUSTERING", output_dimensionality=16)
    before = config.model_dump()
    response = await client.embed_content(
        ["one", "two"], config=config, output_dimensionality=DIMENSIONS
    )

    body = embedding_calls(vertex_emulator)[0].body
    assert isinstance(body, dict)
    settings = body["requests"][0]["embedContentConfig"]
    assert settings == {"taskType": "CLUSTERING", "outputDimensionality": DIMENSIONS}
    assert config.model_dump() == before
    assert all(len(v) == DIMENSIONS for v in vectors(response))


async def test_one_input_uses_embed_content_and_the_configured_model(
    vertex_emulator: VertexEmulator,
) -> None:
    config = vertex_emulator.config(embedding_model="gemini-embedding-2")
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        response = await client.embed_content(
            types.Content(parts=[types.Part(text="a "), types.Part(text="photo")]),
            output_dimensionality=DIMENSIONS,
        )
    (call,) = embedding_calls(vertex_emulator)
    assert call.path.endswith("/models/gemini-embedding-2:embedContent")
    assert texts_sent(call) == ["a photo"]
    assert len(vectors(response)) == 1


@pytest.mark.parametrize(
    ("contents", "options", "field"),
    [
        ([], {}, "contents"),
        (["fine", "   "], {}, "contents"),
        (["x" * 40_000], {"auto_truncate": False}, "contents"),
        (["text"], {"output_dimensionality": 0}, "output_dimensionality"),
        (["text"], {"output_dimensionality": 3_073}, "output_dimensionality"),
        (["text"], {"model": TEXT_MODEL, "output_dimensionality": 769}, "output_dimensionality"),
        (["text"], {"task_type": "SUMMARIZE"}, "task_type"),
        (["text"], {"title": "A title"}, "title"),
        (
            ["text"],
            {"config": {"http_options": {"retry_options": {"attempts": 3}}}},
            "http_options.retry_options",
        ),
        (
            [types.Part(inline_data=types.Blob(data=b"x", mime_type="image/png"))],
            {"model": TEXT_MODEL},
            "contents",
        ),
        ([42], {}, "contents"),
        (["text"], {"max_retries": -1}, "max_retries"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_sent(
    client: GreyCloudAsyncClient,
    vertex_emulator: VertexEmulator,
    contents: Any,
    options: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(ConfigError) as raised:
        await client.embed_content(contents, **options)
    assert raised.value.field == field
    assert embedding_calls(vertex_emulator) == []


async def test_a_request_that_fails_for_good_stops_the_call(
    vertex_emulator: VertexEmulator,
) -> None:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, max_concurrency=1)
    vertex_emulator.inject(Fault.status(400, "bad input"), path=":batchEmbedContents")
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        try:
            await client.embed_content([f"t{i}" for i in range(500)], output_dimensionality=4)
        except errors.ClientError as exc:
            assert exc.code == 400
        else:
            pytest.fail("the call succeeded although its first request failed for good")
    # One at a time: after the first request failed, the other four were never sent.
    assert [c.status for c in embedding_calls(vertex_emulator)] == [400]


async def test_a_per_day_quota_stops_the_embedding_and_is_counted_by_the_limiter(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(429, quota_id="EmbedRequestsPerDayPerProjectPerModel"))
    with pytest.raises(QuotaExhaustedError, match="PerDay"):
        await client.embed_content("a line")
    assert len(embedding_calls(vertex_emulator)) == 1  # not retried: tomorrow is too far
    stats = client.rate_limiter.stats().models[client.config.embedding_model]
    assert stats.rate_limited_per_day == 1
