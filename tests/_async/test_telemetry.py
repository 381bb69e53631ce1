"""Traces, metrics and retry log records of the client, through the OpenTelemetry SDK's
in-memory exporters and the real SDK against the emulator.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from greycloud import GreyCloudAsyncCache, GreyCloudAsyncClient, UsageMeter
from greycloud.testing import Fault, VertexEmulator
from tests.otel_fixture import Recorded

MODEL = "gemini-2.5-flash"
FAST = {"base_delay": 0.01, "max_delay": 0.02}
SECRET = "my-very-private-prompt-7731"


@pytest.fixture
async def client(vertex_emulator: VertexEmulator) -> AsyncIterator[GreyCloudAsyncClient]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, max_concurrency=64)
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


def by_name(otel: Recorded, name: str) -> list[Any]:
    return [span for span in otel.spans() if span.name == name]


def children_of(otel: Recorded, parent: Any) -> list[Any]:
    spans = [s for s in otel.spans() if s.parent and s.parent.span_id == parent.context.span_id]
    return sorted(spans, key=lambda span: span.start_time)


def point_sum(points: list[Any], **attributes: Any) -> float:
    return sum(
        p.sum if hasattr(p, "sum") else p.value
        for p in points
        if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


async def test_a_retried_call_is_one_span_with_an_attempt_span_each(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator, otel: Recorded
) -> None:
    vertex_emulator.inject(Fault.status(503))
    vertex_emulator.inject(Fault.status(429, retry_delay=0.3))
    response = await client.generate_with_retry("hello", temperature=0.5, **FAST)

    [call] = by_name(otel, f"generate_content {MODEL}")
    attributes = call.attributes
    assert attributes["gen_ai.operation.name"] == "generate_content"
    assert attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == vertex_emulator.port
    assert attributes["gen_ai.response.model"] == response.model_version
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    usage = response.usage_metadata
    assert usage is not None
    assert attributes["gen_ai.usage.input_tokens"] == usage.prompt_token_count
    assert attributes["gen_ai.usage.output_tokens"] == usage.candidates_token_count
    assert "error.type" not in attributes

    attempts = children_of(otel, call)
    assert [a.name for a in attempts] == ["greycloud.attempt"] * 3
    assert [a.attributes["greycloud.attempt"] for a in attempts] == [1, 2, 3]
    assert [a.attributes.get("error.type") for a in attempts] == ["503", "429", None]
    assert "greycloud.retry.delay" not in attempts[0].attributes
    assert attempts[1].attributes["greycloud.retry.reason"] == "503 UNAVAILABLE"
    assert 0 < attempts[1].attributes["greycloud.retry.delay"] <= 0.02
    assert attempts[2].attributes["greycloud.retry.reason"] == "429 RESOURCE_EXHAUSTED"
    # After a 429 the wait is the server's retry delay, not the short backoff.
    assert attempts[2].attributes["greycloud.retry.delay"] >= 0.3
    assert (attempts[2].start_time - attempts[1].end_time) / 1e9 >= 0.3
    for attempt in attempts:
        assert attempt.attributes["greycloud.limiter.wait"] >= 0

    metrics = otel.metrics()
    assert point_sum(metrics["greycloud.client.retries"], **{"error.type": "503"}) == 1
    assert point_sum(metrics["greycloud.client.retries"], **{"error.type": "429"}) == 1
    assert point_sum(metrics["greycloud.client.rate_limited"]) == 1
    [duration] = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1
    assert duration.sum >= 0.3
    # The rate gauge adds up every limiter of the process: a model only this client uses.
    own_model = f"gemini-2.5-flash-telemetry-{id(client)}"
    await client.generate_content("hi", model=own_model)
    vertex_emulator.inject(Fault.status(429, retry_delay=0.01), model=own_model)
    await client.generate_with_retry("hi", model=own_model, **FAST)
    gauge = otel.metrics()["greycloud.limiter.rate"]
    rates = {p.attributes["gen_ai.request.model"]: p.value for p in gauge}
    own = client.rate_limiter.stats().models[own_model]
    assert own.rate_factor == pytest.approx(0.7)  # slowed by the 429
    assert rates[own_model] == pytest.approx(own.rpm)


async def test_time_waiting_in_the_limiter_is_on_the_attempts_and_in_the_metric(
    vertex_emulator: VertexEmulator, otel: Recorded
) -> None:
    config = vertex_emulator.config(rpm=600)  # one start every 0.1 s
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        for _ in range(3):
            await client.generate_content("hi")
    waits = [
        span.attributes["greycloud.limiter.wait"] for span in by_name(otel, "greycloud.attempt")
    ]
    assert len(waits) == 3
    assert sum(wait > 0.05 for wait in waits) >= 2
    [point] = otel.metrics()["greycloud.limiter.wait_time"]
    assert point.attributes == {"gen_ai.request.model": MODEL}
    assert point.count == sum(wait > 0 for wait in waits)  # attempts that started at once: none
    assert point.sum == pytest.approx(sum(waits))


async def test_attempt_spans_only_for_retried_calls_when_asked(
    vertex_emulator: VertexEmulator, otel: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREYCLOUD_OTEL_ATTEMPT_SPANS", "retried")
    config = vertex_emulator.config()
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        await client.generate_with_retry("once", **FAST)
        vertex_emulator.inject(Fault.status(503))
        await client.generate_with_retry("twice", **FAST)
    once, twice = by_name(otel, f"generate_content {MODEL}")
    assert children_of(otel, once) == []
    assert once.attributes["greycloud.attempt"] == 1
    assert once.attributes["greycloud.limiter.wait"] >= 0
    first, second = children_of(otel, twice)
    assert first.attributes["error.type"] == "503"
    assert second.attributes["greycloud.retry.reason"] == "503 UNAVAILABLE"
    assert twice.start_time <= first.start_time < first.end_time <= second.start_time


async def test_a_call_that_fails_for_good_records_its_error(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator, otel: Recorded
) -> None:
    vertex_emulator.inject(Fault.status(400, "bad request"))
    with pytest.raises(Exception, match="bad request"):
        await client.generate_with_retry("hello", **FAST)
    [call] = by_name(otel, f"generate_content {MODEL}")
    assert call.attributes["error.type"] == "400"
    assert not call.status.is_ok
    [duration] = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "400"


async def test_token_metrics_and_the_usage_meter_equal_the_servers_usage(
    client: GreyCloudAsyncClient, otel: Recorded
) -> None:
    responses = [
        await client.generate_content("one"),
        await client.generate_with_retry("a somewhat longer prompt, two", **FAST),
    ]
    chunks = [chunk async for chunk in client.generate_content_stream("three", return_chunks=True)]
    usages = [r.usage_metadata for r in responses] + [chunks[-1].usage_metadata]
    assert all(u is not None for u in usages)
    sent_in = sum(u.prompt_token_count or 0 for u in usages if u)
    sent_out = sum(u.candidates_token_count or 0 for u in usages if u)

    points = otel.metrics()["gen_ai.client.token.usage"]
    assert point_sum(points, **{"gen_ai.token.type": "input"}) == sent_in
    assert point_sum(points, **{"gen_ai.token.type": "output"}) == sent_out
    assert sum(p.count for p in points) == 2 * len(usages)
    totals = client.usage.totals()
    assert (totals.responses, totals.input, totals.output) == (3, sent_in, sent_out)
    assert totals.input_by_modality == {"TEXT": sent_in}


async def test_a_shared_usage_meter_adds_up_several_clients(
    vertex_emulator: VertexEmulator,
) -> None:
    meter = UsageMeter()
    config = vertex_emulator.config()
    for _ in range(2):
        async with GreyCloudAsyncClient(
            config, credentials=vertex_emulator.credentials, usage=meter
        ) as client:
            await client.generate_content("hi", model="gemini-2.5-pro")
    assert meter.by_model()["gemini-2.5-pro"].responses == 2


async def test_a_stream_records_its_time_to_first_chunk(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator, otel: Recorded
) -> None:
    vertex_emulator.latency = 0.2
    pieces = [piece async for piece in client.generate_content_stream("stream me")]
    assert pieces

    [call] = by_name(otel, f"generate_content {MODEL}")
    first = call.attributes["gen_ai.response.time_to_first_chunk"]
    assert 0.2 <= first <= (call.end_time - call.start_time) / 1e9
    assert call.attributes["greycloud.stream.resumptions"] == 0
    [attempt] = children_of(otel, call)
    assert attempt.attributes["greycloud.attempt"] == 1
    metrics = otel.metrics()
    [point] = metrics["gen_ai.client.operation.time_to_first_chunk"]
    assert point.count == 1
    assert point.sum == pytest.approx(first)


async def test_a_resumed_stream_counts_its_resumption(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator, otel: Recorded
) -> None:
    vertex_emulator.set_response_text("one two three four five six seven eight nine ten")
    vertex_emulator.inject(Fault.cut_stream(after_events=2), path=":streamGenerateContent")
    stream = client.generate_with_retry("count", streaming=True, **FAST)
    text = "".join([piece async for piece in stream])
    assert text == "one two three four five six seven eight nine ten"

    [call] = by_name(otel, f"generate_content {MODEL}")
    assert call.attributes["greycloud.stream.resumptions"] == 1
    attempts = children_of(otel, call)
    assert [a.attributes["greycloud.attempt"] for a in attempts] == [1, 2]
    assert "error.type" in attempts[0].attributes


async def test_no_prompt_or_answer_text_in_any_span_by_default(
    client: GreyCloudAsyncClient, otel: Recorded
) -> None:
    response = await client.generate_content(SECRET, system_instruction="be " + SECRET)
    answer = response.text
    assert answer
    [piece async for piece in client.generate_content_stream(SECRET)]
    await client.count_tokens(SECRET)
    spans = otel.spans()
    assert len(spans) >= 5
    for span in spans:
        for value in span.attributes.values():
            assert SECRET not in str(value)
            assert answer not in str(value)


async def test_prompt_and_answer_text_when_the_user_opts_in(
    vertex_emulator: VertexEmulator, otel: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    async with GreyCloudAsyncClient(
        vertex_emulator.config(), credentials=vertex_emulator.credentials
    ) as client:
        response = await client.generate_content(SECRET, system_instruction="be brief")
        streamed = "".join([piece async for piece in client.generate_content_stream(SECRET)])
    whole, stream = by_name(otel, f"generate_content {MODEL}")
    for span, answer in ((whole, response.text), (stream, streamed)):
        assert SECRET in span.attributes["gen_ai.input.messages"]
        assert '"role": "assistant"' in span.attributes["gen_ai.output.messages"]
        assert str(answer) in span.attributes["gen_ai.output.messages"].replace("\\n", "\n")
    assert "be brief" in whole.attributes["gen_ai.system_instructions"]


async def test_the_stability_opt_in_drops_the_old_system_attribute(
    vertex_emulator: VertexEmulator, otel: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = vertex_emulator.config()
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        await client.generate_content("hi")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        await client.generate_content("hi")
    default, latest = by_name(otel, f"generate_content {MODEL}")
    assert default.attributes["gen_ai.system"] == "gcp.vertex_ai"
    assert "gen_ai.system" not in latest.attributes
    assert latest.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"


async def test_chat_turns_count_tokens_and_caches_have_their_own_spans(
    client: GreyCloudAsyncClient, otel: Recorded
) -> None:
    chat = client.chats.create()
    await chat.send_message("hi")
    [piece async for piece in chat.send_message_stream("again")]
    await client.count_tokens("count these")
    names = [span.name for span in otel.spans()]
    assert names.count(f"chat {MODEL}") == 2
    assert f"count_tokens {MODEL}" in names
    chat_spans = by_name(otel, f"chat {MODEL}")
    assert all(s.attributes["gen_ai.operation.name"] == "chat" for s in chat_spans)


async def test_an_embedding_call_is_one_span_with_an_attempt_span_per_request_sent(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator, otel: Recorded
) -> None:
    model = client.config.embedding_model
    vertex_emulator.inject(Fault.status(503), model=model)
    # 250 texts are three requests (100 inputs at most); one of them is sent twice.
    response = await client.embed_content([f"text {n}" for n in range(250)], max_retries=2)

    [call] = by_name(otel, f"embeddings {model}")
    assert call.attributes["gen_ai.operation.name"] == "embeddings"
    assert call.attributes["gen_ai.request.model"] == model
    attempts = children_of(otel, call)
    assert [a.name for a in attempts] == ["greycloud.attempt"] * 4
    assert sorted(a.attributes["greycloud.attempt"] for a in attempts) == [1, 1, 1, 2]
    [failed] = [a for a in attempts if "error.type" in a.attributes]
    assert failed.attributes["error.type"] == "503"
    [retried] = [a for a in attempts if a.attributes["greycloud.attempt"] == 2]
    assert retried.attributes["greycloud.retry.reason"] == "503 UNAVAILABLE"
    assert all(a.attributes["greycloud.limiter.wait"] >= 0 for a in attempts)

    counted = sum(e.statistics.token_count or 0 for e in response.embeddings or [] if e.statistics)
    assert counted > 0
    assert call.attributes["gen_ai.usage.input_tokens"] == counted
    metrics = otel.metrics()
    points = metrics["gen_ai.client.token.usage"]
    assert point_sum(points, **{"gen_ai.token.type": "input"}) == counted
    assert sum(p.count for p in points) == 3  # one input measurement a response, no output
    assert point_sum(metrics["greycloud.client.retries"], **{"error.type": "503"}) == 1
    assert client.usage.by_model()[model].input == counted


async def test_cache_operations_have_spans(client: GreyCloudAsyncClient, otel: Recorded) -> None:
    async with GreyCloudAsyncCache(client=client) as caches:
        created = await caches.create_cache_from_text("The manual explains every setting. " * 300)
        await caches.delete_cache(str(created.name))
    names = [span.name for span in otel.spans()]
    assert f"caches.create {MODEL}" in names
    assert "caches.delete" in names
    [create] = by_name(otel, f"caches.create {MODEL}")
    assert create.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"


async def test_function_calls_run_inside_the_calls_span(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator, otel: Recorded
) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    vertex_emulator.script_function_calls([{"name": "get_weather", "args": {"city": "Oslo"}}])
    await client.generate_with_retry("weather?", tools=[get_weather], **FAST)
    [call] = by_name(otel, f"generate_content {MODEL}")
    hops = children_of(otel, call)
    assert [a.attributes["greycloud.attempt"] for a in hops] == [1, 1]  # one attempt per hop
    points = otel.metrics()["gen_ai.client.token.usage"]
    assert sum(p.count for p in points) == 4  # input and output of each hop


async def test_one_log_record_per_retry_with_its_fields(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    vertex_emulator.inject(Fault.status(503), times=2)
    with caplog.at_level(logging.INFO, logger="greycloud.client"):
        await client.generate_with_retry("hi", **FAST)
    records = [r for r in caplog.records if r.name == "greycloud.client"]
    assert [(r.__dict__["attempt"], r.__dict__["status"]) for r in records] == [(1, 503), (2, 503)]
    assert all(r.__dict__["model"] == MODEL and r.__dict__["delay"] > 0 for r in records)
    assert all(vertex_emulator.token not in r.getMessage() for r in records)
