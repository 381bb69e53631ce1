# DO NOT EDIT: generated from tests/_async/test_client.py by tools/generate.py.
# Change tests/_async/test_client.py and run `make generate`.
# output-sha256: 155e88f84b525804
"""The client's behaviour, checked on what reached a real server (the emulator, over HTTP).

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import pytest
from google.genai import errors, types

from greycloud import (
    AuthError,
    ConfigError,
    GreyCloudClient,
    QuotaExhaustedError,
    RetryExhaustedError,
    StreamInterruptedError,
    SyncVertexRateLimiter,
)
from greycloud._primitives import sync_sleep
from greycloud.testing import Fault, RequestRecord, VertexEmulator

MODEL = "gemini-2.5-flash"
FAST = {"base_delay": 0.01, "max_delay": 0.05}


@pytest.fixture
def client(vertex_emulator: VertexEmulator) -> Iterator[GreyCloudClient]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, max_concurrency=64)
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


def generation_calls(emulator: VertexEmulator) -> list[RequestRecord]:
    return [r for r in emulator.requests() if ":generateContent" in r.path]


def stream_calls(emulator: VertexEmulator) -> list[RequestRecord]:
    return [r for r in emulator.requests() if ":streamGenerateContent" in r.path]


def camel(value: Any) -> Any:
    """``value`` with camelCase keys: the SDK sends some nested fields in snake_case, which
    the service accepts as well."""
    if isinstance(value, dict):
        return {
            "".join(w if i == 0 else w.title() for i, w in enumerate(k.split("_"))): camel(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [camel(item) for item in value]
    return value


def last_body(emulator: VertexEmulator) -> dict[str, Any]:
    body = emulator.requests()[-1].body
    assert isinstance(body, dict)
    return camel(body)


def collect(stream: Iterator[Any]) -> list[Any]:
    return [item for item in stream]


# -- what is sent ------------------------------------------------------------------------------


def test_plain_string_prompt_and_answer(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    response = client.generate_content("What is a quota?")
    assert response.text
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count
    body = last_body(vertex_emulator)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "What is a quota?"}]}]
    assert f"/models/{MODEL}:generateContent" in vertex_emulator.requests()[-1].path


def test_generation_config_from_call_arguments(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    client.generate_content(
        "hi",
        model="gemini-2.5-pro",
        system_instruction="Be brief.",
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=64,
        safety_settings=[
            {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"},
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=types.HarmBlockThreshold.BLOCK_NONE,
            ),
        ],
        thinking_level="low",
        candidate_count=2,
    )
    record = vertex_emulator.requests()[-1]
    assert "/models/gemini-2.5-pro:generateContent" in record.path
    body = camel(record.body)
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    config = body["generationConfig"]
    assert config["temperature"] == 0.3
    assert config["topP"] == 0.9
    assert config["maxOutputTokens"] == 64
    assert config["candidateCount"] == 2
    assert config["thinkingConfig"] == {"thinkingLevel": "LOW"}
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"},
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
    ]
    assert "tools" not in body
    assert "cachedContent" not in body


def test_cached_content_is_sent_and_counted(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    sdk = vertex_emulator.sdk_client()
    cache = sdk.caches.create(
        model=MODEL, config=types.CreateCachedContentConfig(contents=["long document " * 300])
    )
    assert cache.name
    response = client.generate_content("question", cached_content=cache.name)
    assert last_body(vertex_emulator)["cachedContent"] == cache.name
    assert response.usage_metadata is not None
    assert response.usage_metadata.cached_content_token_count


def test_generation_config_from_the_config(vertex_emulator: VertexEmulator) -> None:
    config = vertex_emulator.config(
        temperature=1.5,
        top_p=0.5,
        seed=7,
        max_output_tokens=32,
        system_instruction="From the config.",
        thinking_level="HIGH",
        safety_settings=[{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
    )
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        client.generate_content("hi")
        # A call argument wins over the config value.
        client.generate_content("hi", temperature=0.0, system_instruction="Override.")
    first, second = (camel(r.body) for r in generation_calls(vertex_emulator))
    assert first["generationConfig"] == {
        "temperature": 1.5,
        "topP": 0.5,
        "seed": 7,
        "maxOutputTokens": 32,
        "thinkingConfig": {"thinkingLevel": "HIGH"},
    }
    assert first["systemInstruction"]["parts"] == [{"text": "From the config."}]
    assert first["safetySettings"] == [
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}
    ]
    assert second["generationConfig"]["temperature"] == 0.0
    assert second["systemInstruction"]["parts"] == [{"text": "Override."}]


def test_safety_settings_none_sends_nothing_and_empty_list_sends_empty(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    client.generate_content("hi")
    assert "safetySettings" not in last_body(vertex_emulator)
    client.generate_content("hi", safety_settings=[])
    assert last_body(vertex_emulator).get("safetySettings") == []


def test_vertex_ai_search_tool_when_configured(vertex_emulator: VertexEmulator) -> None:
    datastore = "projects/p/locations/global/collections/default_collection/dataStores/docs"
    config = vertex_emulator.config(
        use_vertex_ai_search=True, vertex_ai_search_datastore=datastore, grounding_mode="tool"
    )
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        client.generate_content("hi")
        assert last_body(vertex_emulator)["tools"] == [
            {"retrieval": {"vertexAiSearch": {"datastore": datastore}}}
        ]
        own_tool = types.Tool(google_search=types.GoogleSearch())
        client.generate_content("hi", tools=[own_tool])
        assert last_body(vertex_emulator)["tools"] == [{"googleSearch": {}}]


def test_unknown_generation_setting_is_a_config_error(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    with pytest.raises(ConfigError, match="not_a_setting"):
        client.generate_content("hi", not_a_setting=1)
    with pytest.raises(ConfigError, match="thinking_level"):
        client.generate_content("hi", thinking_level="huge")
    assert vertex_emulator.requests() == []


# -- streaming ---------------------------------------------------------------------------------


def test_stream_yields_text_that_matches_the_whole_answer(
    client: GreyCloudClient,
) -> None:
    whole = client.generate_content("Tell me about rivers.")
    pieces = collect(client.generate_content_stream("Tell me about rivers."))
    assert len(pieces) > 1
    assert all(isinstance(piece, str) for piece in pieces)
    assert "".join(pieces) == whole.text


def test_stream_raw_chunks_end_with_usage(client: GreyCloudClient) -> None:
    chunks = collect(client.generate_content_stream("Tell me about rivers.", return_chunks=True))
    assert all(isinstance(chunk, types.GenerateContentResponse) for chunk in chunks)
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count


# -- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_transient_status_is_retried(
    client: GreyCloudClient, vertex_emulator: VertexEmulator, code: int
) -> None:
    vertex_emulator.inject(Fault.status(code), times=2)
    response = client.generate_with_retry("hi", **FAST)
    assert response.text
    assert [r.status for r in generation_calls(vertex_emulator)] == [code, code, 200]


def test_dropped_connection_is_retried(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.drop())
    response = client.generate_with_retry("hi", **FAST)
    assert response.text
    assert len(generation_calls(vertex_emulator)) == 2


@pytest.mark.parametrize("code", [400, 403, 404])
def test_client_errors_are_not_retried(
    client: GreyCloudClient, vertex_emulator: VertexEmulator, code: int
) -> None:
    vertex_emulator.inject(Fault.status(code, "the server's own words"))
    with pytest.raises(errors.ClientError) as caught:
        client.generate_with_retry("hi", **FAST)
    assert caught.value.code == code
    assert "the server's own words" in str(caught.value)
    assert len(generation_calls(vertex_emulator)) == 1


def test_retries_give_up_after_max_retries(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(503), times=None)
    with pytest.raises(RetryExhaustedError) as caught:
        client.generate_with_retry("hi", max_retries=2, **FAST)
    assert caught.value.attempts == 3
    assert isinstance(caught.value.last_error, errors.ServerError)
    assert len(generation_calls(vertex_emulator)) == 3


def test_429_waits_for_the_servers_retry_delay(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(429, retry_delay=0.4))
    started = time.monotonic()
    response = client.generate_with_retry("hi", **FAST)
    assert response.text
    calls = generation_calls(vertex_emulator)
    assert [r.status for r in calls] == [429, 200]
    # The backoff alone would be ~0.01 s: the gap is the server's retryDelay.
    assert calls[1].time - calls[0].time >= 0.4
    assert time.monotonic() - started >= 0.4


def test_per_day_quota_is_not_retried(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(
        Fault.status(429, quota_id="GenerateRequestsPerDayPerProjectPerModel", retry_delay=1)
    )
    with pytest.raises(QuotaExhaustedError, match="PerDay"):
        client.generate_with_retry("hi", **FAST)
    assert len(generation_calls(vertex_emulator)) == 1


def test_stream_failure_before_first_chunk_is_retried(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    expected = (client.generate_content("stream me")).text
    vertex_emulator.inject(Fault.status(503), path=":streamGenerateContent")
    stream = client.generate_with_retry("stream me", streaming=True, **FAST)
    assert "".join(collect(stream)) == expected
    calls = stream_calls(vertex_emulator)
    assert len(calls) == 2 and calls[0].status == 503


@pytest.mark.parametrize(
    "fault",
    [
        Fault.cut_stream(after_events=2),
        Fault.cut_stream(after_events=3, reset=True),
        Fault.half_event(after_events=2),
        Fault.error_event(after_events=2, code=503),
    ],
    ids=["closed", "reset", "half-event", "error-event"],
)
def test_stream_cut_midway_resumes_without_duplicated_text(
    client: GreyCloudClient, vertex_emulator: VertexEmulator, fault: Fault
) -> None:
    expected = (client.generate_content("a long story")).text
    vertex_emulator.inject(fault, path=":streamGenerateContent")
    pieces = collect(client.generate_with_retry("a long story", streaming=True, **FAST))
    assert "".join(pieces) == expected
    assert len(stream_calls(vertex_emulator)) == 2


def test_stream_that_restarts_differently_raises_with_the_partial_text(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    answers = iter(["first answer " * 20, "a different second answer " * 20])
    vertex_emulator.responder = lambda request: next(answers)
    vertex_emulator.inject(Fault.cut_stream(after_events=2), path=":streamGenerateContent")
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as caught:
        for piece in client.generate_with_retry("hi", streaming=True, **FAST):
            received.append(piece)
    assert caught.value.partial_text == "".join(received)
    assert caught.value.partial_text.startswith("first answer")


def test_stream_with_retry_yields_before_the_answer_is_complete(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.event_delay(0.3), path=":streamGenerateContent")
    stream = client.generate_with_retry("slow story", streaming=True, **FAST)
    started = time.monotonic()
    first = stream.__next__()
    first_after = time.monotonic() - started
    rest = collect(stream)
    total = time.monotonic() - started
    assert first and rest
    # Events are 0.3 s apart: the first chunk came long before the last.
    assert total - first_after >= 0.3 * (len(rest) - 1)


# -- auth --------------------------------------------------------------------------------------


def test_expired_token_is_refreshed_and_the_call_succeeds(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    client.generate_content("hi")
    sdk_before = client.client
    vertex_emulator.expire_token()
    response = client.generate_content("hi")
    assert response.text
    assert [r.status for r in generation_calls(vertex_emulator)] == [200, 401, 200]
    assert client.client is not sdk_before  # the SDK client was rebuilt


def test_expired_token_mid_session_is_refreshed_for_streams(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.expire_token()
    pieces = collect(client.generate_content_stream("hi"))
    assert pieces
    assert [r.status for r in stream_calls(vertex_emulator)] == [401, 200]


def test_rejected_api_key_is_an_auth_error(vertex_emulator: VertexEmulator) -> None:
    config = vertex_emulator.config(use_api_key=True, api_key="not-the-key", project_id=None)
    with GreyCloudClient(config) as client, pytest.raises(AuthError, match="API key"):
        client.generate_content("hi")


def test_api_key_reaches_the_developer_api(vertex_emulator: VertexEmulator) -> None:
    config = vertex_emulator.config(vertexai=False, api_key=vertex_emulator.api_key)
    with GreyCloudClient(config) as client:
        response = client.generate_content("hi")
    assert response.text
    assert vertex_emulator.requests()[-1].path.endswith(f"/models/{MODEL}:generateContent")
    assert "/projects/" not in vertex_emulator.requests()[-1].path


class RevokedCredentials(google.auth.credentials.Credentials):  # type: ignore[misc]
    """Credentials whose refresh token was revoked: every refresh fails."""

    def refresh(self, request: object) -> None:
        raise google.auth.exceptions.RefreshError("invalid_grant: token has been revoked")


def test_credentials_that_cannot_refresh_are_an_auth_error(
    vertex_emulator: VertexEmulator,
) -> None:
    config = vertex_emulator.config()
    with GreyCloudClient(config, credentials=RevokedCredentials()) as client:
        with pytest.raises(AuthError, match="revoked") as caught:
            client.generate_with_retry("hi", **FAST)
        assert caught.value.fix_command == "gcloud auth application-default login"
        with pytest.raises(AuthError, match="revoked"):
            collect(client.generate_content_stream("hi"))
    assert vertex_emulator.requests() == []


def test_permission_denied_fails_at_once_without_refresh(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    sdk_before = client.client
    vertex_emulator.inject(Fault.status(403, "caller lacks aiplatform.endpoints.predict"))
    with pytest.raises(errors.ClientError, match=r"aiplatform\.endpoints\.predict"):
        client.generate_with_retry("hi", **FAST)
    assert client.client is sdk_before
    assert len(generation_calls(vertex_emulator)) == 1


# -- token counting ----------------------------------------------------------------------------


def test_count_tokens_asks_the_service(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    count = client.count_tokens("one two three four five six seven eight")
    assert count > 0
    record = vertex_emulator.requests()[-1]
    assert record.path.endswith(f"/models/{MODEL}:countTokens")


def test_count_tokens_falls_back_to_an_estimate_with_a_warning(
    client: GreyCloudClient,
    vertex_emulator: VertexEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    vertex_emulator.inject(Fault.status(404, "model not found"), path=":countTokens")
    with caplog.at_level(logging.WARNING):
        count = client.count_tokens("x" * 400)
    assert count == 100
    assert "estimate" in caplog.text


def test_count_tokens_raises_on_a_server_failure(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(500), path=":countTokens")
    with pytest.raises(errors.ServerError):
        client.count_tokens("hello")


# -- limits ------------------------------------------------------------------------------------


def test_limits_come_from_arguments_or_the_config(vertex_emulator: VertexEmulator) -> None:
    config = vertex_emulator.config(rpm=7, tpm=700, max_concurrency=3)
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        assert (client.config.rpm, client.config.tpm, client.config.max_concurrency) == (
            7,
            700,
            3,
        )
    with GreyCloudClient(
        config, rpm=9, max_concurrency=2, credentials=vertex_emulator.credentials
    ) as client:
        assert (client.config.rpm, client.config.tpm, client.config.max_concurrency) == (
            9,
            700,
            2,
        )
        assert client.rate_limiter.rpm == 9


def test_shared_limiter_and_explicit_limits_conflict(
    vertex_emulator: VertexEmulator,
) -> None:
    limiter = SyncVertexRateLimiter(rpm=10)
    with pytest.raises(ConfigError, match="rate_limiter"):
        GreyCloudClient(
            vertex_emulator.config(),
            rpm=5,
            rate_limiter=limiter,
            credentials=vertex_emulator.credentials,
        )


# -- concurrency slots -------------------------------------------------------------------------


@pytest.fixture
def one_slot_client(
    vertex_emulator: VertexEmulator,
) -> Iterator[GreyCloudClient]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, max_concurrency=1)
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


def test_stream_closed_early_frees_its_slot(one_slot_client: GreyCloudClient) -> None:
    stream = one_slot_client.generate_content_stream("a long story")
    assert stream.__next__()
    stream.close()
    # With one slot, this call could not start if the closed stream still held it.
    assert (one_slot_client.generate_content("next")).text


def test_stream_that_failed_frees_its_slot(
    one_slot_client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.error_event(after_events=1, code=400))
    with pytest.raises(errors.ClientError):
        collect(one_slot_client.generate_content_stream("a long story"))
    assert (one_slot_client.generate_content("next")).text


def test_stream_dropped_without_closing_frees_its_slot(
    one_slot_client: GreyCloudClient,
) -> None:
    stream = one_slot_client.generate_content_stream("a long story")
    assert stream.__next__()
    del stream
    gc.collect()
    sync_sleep(0.05)  # the runtime closes a dropped stream on its next turn
    assert (one_slot_client.generate_content("next")).text
