"""The Vertex AI emulator driven by the real google-genai SDK (sync and async).

What the SDK raises for a broken stream, checked here: with the default httpx2 backend (sync),
a clean close mid-stream is ``httpx2.RemoteProtocolError`` and a reset is ``httpx2.ReadError``;
on the async path (aiohttp, installed here) both are ``aiohttp.ClientPayloadError``. A
connection dropped before any response is ``httpx2.RemoteProtocolError`` /
``aiohttp.ServerDisconnectedError``. None of them is wrapped in ``errors.APIError``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx2
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from greycloud.config import GreyCloudConfig
from greycloud.testing import Fault, RequestRecord, VertexEmulator, samples

MODEL = "gemini-2.5-flash"
NO_RETRY = types.HttpRetryOptions(attempts=1)

# The SDK subclasses aiohttp.ClientSession, which aiohttp frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def vertex_client(emu: VertexEmulator, token: str | None = None) -> genai.Client:
    credentials: Any = (
        Credentials(token=token) if token else emu.credentials  # type: ignore[no-untyped-call]
    )
    return genai.Client(
        vertexai=True,
        project=emu.project,
        location=emu.location,
        credentials=credentials,
        http_options=types.HttpOptions(
            base_url=emu.base_url, api_version="v1", retry_options=NO_RETRY
        ),
    )


@pytest.fixture
def client(vertex_emulator: VertexEmulator) -> Iterator[genai.Client]:
    sdk = vertex_client(vertex_emulator)
    yield sdk
    sdk.close()


@pytest.fixture
async def aclient(vertex_emulator: VertexEmulator) -> AsyncIterator[genai.Client]:
    sdk = vertex_client(vertex_emulator)
    yield sdk
    await sdk.aio.aclose()
    sdk.close()


def stream_texts(sdk: genai.Client, contents: str = "hello", **config: Any) -> list[str]:
    chunks = sdk.models.generate_content_stream(
        model=MODEL, contents=contents, config=types.GenerateContentConfig(**config)
    )
    return [chunk.text or "" for chunk in chunks]


async def astream_texts(sdk: genai.Client, contents: str = "hello") -> list[str]:
    stream = await sdk.aio.models.generate_content_stream(model=MODEL, contents=contents)
    return [chunk.text or "" async for chunk in stream]


def error_details(err: errors.APIError) -> list[dict[str, Any]]:
    assert isinstance(err.details, dict)
    details: list[dict[str, Any]] = err.details["error"].get("details", [])
    return details


def retry_delay(err: errors.APIError) -> str:
    return str(next(d["retryDelay"] for d in error_details(err) if "retryDelay" in d))


# -- generateContent, streams, countTokens ------------------------------------------------------


def test_generate_content_sync(client: genai.Client) -> None:
    response = client.models.generate_content(model=MODEL, contents="What is a cloud?")
    assert response.text
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 4  # 16 characters / 4
    assert usage.candidates_token_count and 20 <= usage.candidates_token_count <= 60
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert usage.thoughts_token_count is None
    assert response.candidates and response.candidates[0].finish_reason == "STOP"
    assert response.model_version == MODEL
    assert response.response_id and response.create_time is not None


async def test_generate_content_async(aclient: genai.Client) -> None:
    response = await aclient.aio.models.generate_content(model=MODEL, contents="What is a cloud?")
    assert response.text
    assert response.usage_metadata and response.usage_metadata.total_token_count


def test_stream_matches_plain_answer(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="stream me"))
    assert len(chunks) >= 3
    whole = client.models.generate_content(model=MODEL, contents="stream me")
    assert "".join(chunk.text or "" for chunk in chunks) == whole.text
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == "STOP"
    assert last.usage_metadata == whole.usage_metadata
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])


def test_stream_is_chunked_sse(vertex_emulator: VertexEmulator) -> None:
    url = (
        f"{vertex_emulator.base_url}/v1/projects/p/locations/l/publishers/google/models/"
        f"{MODEL}:streamGenerateContent?alt=sse"
    )
    body = {"contents": [{"role": "user", "parts": [{"text": "raw"}]}]}
    with httpx2.Client() as http:
        response = http.post(
            url, json=body, headers={"Authorization": f"Bearer {vertex_emulator.token}"}
        )
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\r\n\r\n")
    assert events[-1] == ""
    for event in events[:-1]:
        assert event.startswith("data: {") and "\n" not in event
        json.loads(event[len("data: ") :])


async def test_stream_async_matches_plain_answer(aclient: genai.Client) -> None:
    texts = await astream_texts(aclient, "stream me")
    whole = await aclient.aio.models.generate_content(model=MODEL, contents="stream me")
    assert len(texts) >= 3 and "".join(texts) == whole.text


async def test_count_tokens_sync_and_async(client: genai.Client, aclient: genai.Client) -> None:
    contents = "x" * 40
    counted = client.models.count_tokens(model=MODEL, contents=contents)
    acounted = await aclient.aio.models.count_tokens(model=MODEL, contents=contents)
    generated = client.models.generate_content(model=MODEL, contents=contents)
    assert counted.total_tokens == acounted.total_tokens == 10
    assert generated.usage_metadata
    assert generated.usage_metadata.prompt_token_count == counted.total_tokens


def test_system_instruction_counts_and_changes_answer(client: genai.Client) -> None:
    plain = client.models.generate_content(model=MODEL, contents="abcd")
    instructed = client.models.generate_content(
        model=MODEL,
        contents="abcd",
        config=types.GenerateContentConfig(system_instruction="be brief" * 4),
    )
    assert plain.usage_metadata and instructed.usage_metadata
    assert plain.usage_metadata.prompt_token_count == 1
    assert instructed.usage_metadata.prompt_token_count == 1 + 8
    assert plain.text != instructed.text


# -- determinism, limits, scripted answers ---------------------------------------------------


def test_answers_are_deterministic(client: genai.Client) -> None:
    first = client.models.generate_content(model=MODEL, contents="same question")
    second = client.models.generate_content(model=MODEL, contents="same question")
    other = client.models.generate_content(model=MODEL, contents="other question")
    pro = client.models.generate_content(model="gemini-2.5-pro", contents="same question")
    assert first.text == second.text
    assert first.response_id != second.response_id
    assert other.text != first.text and pro.text != first.text
    assert stream_texts(client, "same question") == stream_texts(client, "same question")


def test_max_output_tokens_cuts_the_answer(client: genai.Client) -> None:
    response = client.models.generate_content(
        model=MODEL, contents="long", config=types.GenerateContentConfig(max_output_tokens=5)
    )
    assert response.candidates and response.candidates[0].finish_reason == "MAX_TOKENS"
    assert response.usage_metadata and response.usage_metadata.candidates_token_count == 5
    assert response.text and len(response.text) == 20
    streamed = stream_texts(client, "long", max_output_tokens=5)
    assert "".join(streamed) == response.text


def test_candidate_count(client: genai.Client) -> None:
    response = client.models.generate_content(
        model=MODEL, contents="two", config=types.GenerateContentConfig(candidate_count=2)
    )
    assert response.candidates and len(response.candidates) == 2
    texts = [c.content.parts[0].text for c in response.candidates if c.content and c.content.parts]
    assert len(set(texts)) == 2


def test_thinking_tokens(client: genai.Client) -> None:
    thinking = client.models.generate_content(
        model=MODEL,
        contents="think",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=50)
        ),
    )
    none = client.models.generate_content(
        model=MODEL,
        contents="think",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0)),
    )
    usage = thinking.usage_metadata
    assert usage and usage.thoughts_token_count == 50
    assert usage.total_token_count == (
        (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0) + 50
    )
    assert none.usage_metadata and none.usage_metadata.thoughts_token_count is None


def test_scripted_text_and_responder(vertex_emulator: VertexEmulator, client: genai.Client) -> None:
    vertex_emulator.set_response_text("Paris.")
    vertex_emulator.set_response_text("Rome.", model="gemini-2.5-pro")
    assert client.models.generate_content(model=MODEL, contents="q").text == "Paris."
    assert client.models.generate_content(model="gemini-2.5-pro", contents="q").text == "Rome."
    assert "".join(stream_texts(client, "q")) == "Paris."

    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(body)
        return str(body["contents"][0]["parts"][0]["text"]).upper()

    vertex_emulator.responder = responder
    response = client.models.generate_content(model=MODEL, contents="echo me")
    assert response.text == "ECHO ME"
    assert response.usage_metadata and response.usage_metadata.candidates_token_count == 2
    assert seen[0]["contents"][0]["role"] == "user"
    vertex_emulator.responder = None
    vertex_emulator.set_response_text(None)
    assert client.models.generate_content(model=MODEL, contents="q").text != "Paris."


# -- express mode and the Gemini Developer API ----------------------------------------------


@pytest.mark.parametrize("vertexai", [True, False], ids=["express", "developer"])
async def test_api_key_paths(vertex_emulator: VertexEmulator, vertexai: bool) -> None:
    sdk = vertex_emulator.sdk_client(vertexai=vertexai, api_key=True)
    try:
        response = sdk.models.generate_content(model=MODEL, contents="hi")
        streamed = "".join(stream_texts(sdk, "hi"))
        aresponse = await sdk.aio.models.generate_content(model=MODEL, contents="hi")
        counted = sdk.models.count_tokens(model=MODEL, contents="hi")
        assert response.text == streamed == aresponse.text
        assert counted.total_tokens == 1
    finally:
        await sdk.aio.aclose()
        sdk.close()
    record = vertex_emulator.requests()[0]
    prefix = "/v1/publishers/google/models/" if vertexai else "/v1beta/models/"
    assert record.path == f"{prefix}{MODEL}:generateContent"
    assert record.model == MODEL
    assert "x-goog-api-key" not in {name.lower() for name in record.headers}


def test_developer_api_v1_path(vertex_emulator: VertexEmulator) -> None:
    sdk = vertex_emulator.sdk_client(vertexai=False, api_version="v1")
    assert sdk.models.generate_content(model=MODEL, contents="hi").text
    assert vertex_emulator.requests()[-1].path == f"/v1/models/{MODEL}:generateContent"


def test_v1beta1_is_served(vertex_emulator: VertexEmulator) -> None:
    sdk = genai.Client(
        vertexai=True,
        project="p",
        location="l",
        credentials=vertex_emulator.credentials,
        http_options=types.HttpOptions(base_url=vertex_emulator.base_url, retry_options=NO_RETRY),
    )
    assert sdk.models.generate_content(model=MODEL, contents="hi").text
    record = vertex_emulator.requests()[-1]
    assert record.path.startswith("/v1beta1/projects/p/locations/l/")
    assert (record.project, record.location) == ("p", "l")


# -- auth --------------------------------------------------------------------------------------


def _post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "x"}]}]}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_missing_credentials_is_401(vertex_emulator: VertexEmulator) -> None:
    url = (
        f"{vertex_emulator.base_url}/v1/projects/p/locations/l/publishers/google/models/"
        f"{MODEL}:generateContent"
    )
    status, body = _post(url, {})
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    status, body = _post(url, {"x-goog-api-key": "not-a-key"})
    assert status == 400 and body["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, _ = _post(url, {"Authorization": f"Bearer {vertex_emulator.token}"})
    assert status == 200


def test_wrong_token_is_401(vertex_emulator: VertexEmulator) -> None:
    sdk = vertex_client(vertex_emulator, token="made-up")
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
    vertex_emulator.accept_token("made-up")
    assert sdk.models.generate_content(model=MODEL, contents="hi").text


def test_expired_token_then_refresh(vertex_emulator: VertexEmulator) -> None:
    credentials = vertex_emulator.credentials
    sdk = vertex_client(vertex_emulator)
    assert sdk.models.generate_content(model=MODEL, contents="hi").text
    expired = vertex_emulator.expire_token()
    assert expired == credentials.token
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(model=MODEL, contents="hi")
    err = caught.value
    assert err.code == 401 and err.status == "UNAUTHENTICATED"
    assert "ACCESS_TOKEN_EXPIRED" in (err.message or "")
    assert error_details(err)[0]["reason"] == "ACCESS_TOKEN_EXPIRED"

    credentials.refresh(None)
    assert credentials.token != expired and credentials.refresh_count == 1
    assert sdk.models.generate_content(model=MODEL, contents="hi").text


# -- quotas --------------------------------------------------------------------------------


def test_rpm_quota_rejects_the_sixth_request() -> None:
    clock = FakeClock()
    with VertexEmulator(rpm=5, clock=clock) as emu:
        sdk = vertex_client(emu)
        for _ in range(5):
            sdk.models.generate_content(model=MODEL, contents="hi")
            clock.advance(10.0)
        clock.advance(-0.5)  # the sixth arrives 49.5 s after the first
        with pytest.raises(errors.ClientError) as caught:
            sdk.models.generate_content(model=MODEL, contents="hi")
        err = caught.value
        assert err.code == 429 and err.status == "RESOURCE_EXHAUSTED"
        assert retry_delay(err) == "10.5s"
        quota = next(d for d in error_details(err) if d["@type"].endswith("QuotaFailure"))
        assert quota["violations"][0]["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
        assert err.response.headers["retry-after"] == "11"

        stats = emu.stats()
        assert (stats[MODEL].accepted, stats[MODEL].rejected, stats[MODEL].peak_rpm) == (5, 1, 5)
        assert (stats.accepted, stats.rejected) == (5, 1)

        # Counting tokens is not a generate call; it never uses generation quota.
        sdk.models.count_tokens(model=MODEL, contents="hi")
        clock.advance(10.5)  # the first request has left the window
        assert sdk.models.generate_content(model=MODEL, contents="hi").text
        assert emu.stats()[MODEL].peak_rpm == 5


def test_rejected_requests_do_not_use_quota() -> None:
    clock = FakeClock()
    with VertexEmulator(rpm=1, clock=clock) as emu:
        sdk = vertex_client(emu)
        sdk.models.generate_content(model=MODEL, contents="hi")
        for _ in range(3):
            clock.advance(15.0)
            with pytest.raises(errors.ClientError):
                sdk.models.generate_content(model=MODEL, contents="hi")
        clock.advance(15.0)  # 60 s after the only admitted request
        assert sdk.models.generate_content(model=MODEL, contents="hi").text


async def test_tpm_quota_counts_input_tokens() -> None:
    clock = FakeClock()
    with VertexEmulator(tpm=100, clock=clock) as emu:
        sdk = vertex_client(emu)
        try:
            await sdk.aio.models.generate_content(model=MODEL, contents="x" * 240)  # 60 tokens
            clock.advance(20.0)
            with pytest.raises(errors.ClientError) as caught:
                await sdk.aio.models.generate_content(model=MODEL, contents="x" * 200)  # 50
            err = caught.value
            quota = next(d for d in error_details(err) if d["@type"].endswith("QuotaFailure"))
            assert "TokensPerMinute" in quota["violations"][0]["quotaId"]
            assert retry_delay(err) == "40s"
            assert await sdk.aio.models.generate_content(model=MODEL, contents="x" * 160)  # 40
            assert emu.stats()[MODEL].peak_tpm == 100
        finally:
            await sdk.aio.aclose()


def test_media_count_by_the_published_rules_on_the_wire(vertex_emulator: VertexEmulator) -> None:
    image = base64.b64encode(samples.png(1024, 1024)).decode()
    pdf = base64.b64encode(samples.pdf(3)).decode()
    parts = [
        {"text": "Compare these."},
        {"inlineData": {"data": image, "mimeType": "image/png"}},
        {"inlineData": {"data": pdf, "mimeType": "application/pdf"}},
        {"fileData": {"fileUri": "gs://b/clip.mp4", "mimeType": "video/mp4"}},
    ]
    body = json.dumps({"contents": [{"role": "user", "parts": parts}]}).encode()
    url = (
        f"{vertex_emulator.base_url}/v1/projects/{vertex_emulator.project}/locations/"
        f"{vertex_emulator.location}/publishers/google/models/{MODEL}:countTokens"
    )
    headers = {"Authorization": f"Bearer {vertex_emulator.token}"}
    answer = httpx2.post(url, content=body, headers=headers).json()
    details = {d["modality"]: d["tokenCount"] for d in answer["promptTokensDetails"]}
    assert details["TEXT"] == 4 and details["IMAGE"] == 4 * 258 and details["DOCUMENT"] == 3 * 258
    assert details["VIDEO"] > 0  # a URI it cannot read: a fixed size per URI
    assert answer["totalTokens"] == sum(details.values())
    again = httpx2.post(url, content=body, headers=headers).json()
    assert again == answer


def test_tpm_quota_is_charged_with_media_tokens() -> None:
    clock = FakeClock()
    with VertexEmulator(tpm=1_100, clock=clock) as emu:
        sdk = vertex_client(emu)
        image = types.Part.from_bytes(data=samples.png(1024, 1024), mime_type="image/png")
        response = sdk.models.generate_content(model=MODEL, contents=["Look", image])
        assert response.usage_metadata is not None
        assert response.usage_metadata.prompt_token_count == 1 + 4 * 258
        with pytest.raises(errors.ClientError) as caught:
            sdk.models.generate_content(model=MODEL, contents=["Look", image])
        assert caught.value.code == 429
        assert emu.stats()[MODEL].peak_tpm == 1 + 4 * 258


def test_per_model_quotas_and_live_changes() -> None:
    clock = FakeClock()
    with VertexEmulator(model_quotas={"gemini-2.5-pro": {"rpm": 1}}, clock=clock) as emu:
        sdk = vertex_client(emu)
        for _ in range(3):
            sdk.models.generate_content(model=MODEL, contents="hi")
        sdk.models.generate_content(model="gemini-2.5-pro", contents="hi")
        with pytest.raises(errors.ClientError):
            sdk.models.generate_content(model="gemini-2.5-pro", contents="hi")

        emu.set_quota(rpm=3)  # flash already has 3 in its window
        with pytest.raises(errors.ClientError):
            sdk.models.generate_content(model=MODEL, contents="hi")
        emu.set_quota(rpm=None, model="gemini-2.5-pro")
        sdk.models.generate_content(model="gemini-2.5-pro", contents="hi")
        emu.set_quota(rpm=None)
        sdk.models.generate_content(model=MODEL, contents="hi")
        stats = emu.stats()
        assert (stats[MODEL].accepted, stats[MODEL].rejected) == (4, 1)
        assert (stats["gemini-2.5-pro"].accepted, stats["gemini-2.5-pro"].rejected) == (2, 1)


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (400, "INVALID_ARGUMENT", errors.ClientError),
        (403, "PERMISSION_DENIED", errors.ClientError),
        (404, "NOT_FOUND", errors.ClientError),
        (408, "DEADLINE_EXCEEDED", errors.ClientError),
        (500, "INTERNAL", errors.ServerError),
        (502, "UNAVAILABLE", errors.ServerError),
        (503, "UNAVAILABLE", errors.ServerError),
        (504, "DEADLINE_EXCEEDED", errors.ServerError),
    ],
)
async def test_status_faults(
    vertex_emulator: VertexEmulator,
    aclient: genai.Client,
    code: int,
    status: str,
    kind: type[errors.APIError],
) -> None:
    vertex_emulator.inject(Fault.status(code, "scripted failure"), times=2)
    with pytest.raises(kind) as caught:
        aclient.models.generate_content(model=MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (code, status)
    assert caught.value.message == "scripted failure"
    with pytest.raises(kind):
        await aclient.aio.models.generate_content(model=MODEL, contents="hi")
    assert await aclient.aio.models.generate_content(model=MODEL, contents="hi")
    assert vertex_emulator.stats()[MODEL].faulted == 2


def test_429_fault_carries_retry_info(
    vertex_emulator: VertexEmulator, client: genai.Client
) -> None:
    vertex_emulator.inject(Fault.status(429, retry_delay=12.5))
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    err = caught.value
    assert err.status == "RESOURCE_EXHAUSTED" and retry_delay(err) == "12.5s"
    assert err.response.headers["retry-after"] == "13"
    quota = next(d for d in error_details(err) if d["@type"].endswith("QuotaFailure"))
    assert "PerMinute" in quota["violations"][0]["quotaId"]
    assert vertex_emulator.stats()[MODEL].rejected == 1

    vertex_emulator.inject(Fault.status(429, quota_id="GenerateRequestsPerDayPerProjectPerModel"))
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert "PerDay" in json.dumps(caught.value.details)


async def test_expired_token_fault(
    vertex_emulator: VertexEmulator, client: genai.Client, aclient: genai.Client
) -> None:
    vertex_emulator.inject(Fault.expired_token(), times=2)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 401 and "ACCESS_TOKEN_EXPIRED" in (caught.value.message or "")
    with pytest.raises(errors.ClientError):
        await aclient.aio.models.generate_content(model=MODEL, contents="hi")


async def test_delay_faults(
    vertex_emulator: VertexEmulator, client: genai.Client, aclient: genai.Client
) -> None:
    vertex_emulator.inject(Fault.delay(0.2))
    started = time.perf_counter()
    assert client.models.generate_content(model=MODEL, contents="hi").text
    assert time.perf_counter() - started >= 0.2

    plain = "".join(stream_texts(client))
    vertex_emulator.inject(Fault.event_delay(0.03))
    started = time.perf_counter()
    texts = await astream_texts(aclient)
    assert time.perf_counter() - started >= 0.03 * len(texts)
    assert "".join(texts) == plain


def test_drop_sync(vertex_emulator: VertexEmulator, client: genai.Client) -> None:
    vertex_emulator.inject(Fault.drop(), times=2)
    with pytest.raises(httpx2.RemoteProtocolError):
        client.models.generate_content(model=MODEL, contents="hi")
    with pytest.raises(httpx2.RemoteProtocolError):
        stream_texts(client)
    assert client.models.generate_content(model=MODEL, contents="hi").text
    assert [r.status for r in vertex_emulator.requests()] == [0, 0, 200]


async def test_drop_async(vertex_emulator: VertexEmulator, aclient: genai.Client) -> None:
    vertex_emulator.inject(Fault.drop())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await aclient.aio.models.generate_content(model=MODEL, contents="hi")
    assert await aclient.aio.models.generate_content(model=MODEL, contents="hi")


@pytest.mark.parametrize(
    ("fault", "sync_error"),
    [
        (Fault.cut_stream(2), httpx2.RemoteProtocolError),
        (Fault.cut_stream(2, reset=True), httpx2.ReadError),
        (Fault.half_event(2), httpx2.RemoteProtocolError),
    ],
    ids=["cut", "reset", "half-event"],
)
async def test_broken_streams(
    vertex_emulator: VertexEmulator,
    client: genai.Client,
    aclient: genai.Client,
    fault: Fault,
    sync_error: type[Exception],
) -> None:
    full = stream_texts(client)
    vertex_emulator.inject(fault)
    got: list[str] = []
    with pytest.raises(sync_error):
        for chunk in client.models.generate_content_stream(model=MODEL, contents="hello"):
            got.append(chunk.text or "")
    assert got == full[:2]

    vertex_emulator.inject(fault)
    got = []
    with pytest.raises(aiohttp.ClientPayloadError):
        stream = await aclient.aio.models.generate_content_stream(model=MODEL, contents="hello")
        async for chunk in stream:
            got.append(chunk.text or "")
    assert got == full[:2]
    assert stream_texts(client) == full  # the next stream is whole again


async def test_error_event(
    vertex_emulator: VertexEmulator, client: genai.Client, aclient: genai.Client
) -> None:
    full = stream_texts(client)
    vertex_emulator.inject(Fault.error_event(2, code=503, message="overloaded"), times=2)
    got: list[str] = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="hello"):
            got.append(chunk.text or "")
    assert got == full[:2] and caught.value.code == 503
    assert caught.value.message == "overloaded"
    with pytest.raises(errors.ServerError):
        await astream_texts(aclient)


def test_fault_matching(vertex_emulator: VertexEmulator, client: genai.Client) -> None:
    emu = vertex_emulator
    # Stream-only faults wait for a stream; path and model filters pick the request.
    emu.inject(Fault.cut_stream(0))
    emu.inject(Fault.status(500), model="gemini-2.5-pro")
    emu.inject(Fault.status(503), path=":countTokens")
    assert client.models.generate_content(model=MODEL, contents="hi").text
    with pytest.raises(errors.ServerError) as caught:
        client.models.count_tokens(model="gemini-2.5-pro", contents="hi")
    assert caught.value.code == 500  # injected first, so it wins over the path fault
    with pytest.raises(errors.ServerError) as caught:
        client.models.count_tokens(model=MODEL, contents="hi")
    assert caught.value.code == 503
    with pytest.raises(httpx2.RemoteProtocolError):
        stream_texts(client)

    def long_prompts(record: RequestRecord) -> bool:
        return "long" in json.dumps(record.body)

    emu.inject(Fault.status(400), times=None, match=long_prompts)
    for _ in range(3):
        with pytest.raises(errors.ClientError):
            client.models.generate_content(model=MODEL, contents="a long one")
    assert client.models.generate_content(model=MODEL, contents="short").text
    emu.clear_faults()
    assert client.models.generate_content(model=MODEL, contents="a long one").text
    assert [r.fault for r in emu.requests()].count("status") == 5


def test_inject_rejects_bad_times(vertex_emulator: VertexEmulator) -> None:
    with pytest.raises(ValueError, match="times"):
        vertex_emulator.inject(Fault.drop(), times=0)


# -- records, reset, config, life cycle ---------------------------------------------------


def test_requests_and_reset(vertex_emulator: VertexEmulator, client: genai.Client) -> None:
    client.models.generate_content(model=MODEL, contents="remember me")
    (record,) = vertex_emulator.requests()
    assert record.method == "POST" and record.model == MODEL and record.status == 200
    assert record.body["contents"][0]["parts"][0]["text"] == "remember me"
    assert "authorization" not in {name.lower() for name in record.headers}
    vertex_emulator.inject(Fault.drop())
    vertex_emulator.set_quota(rpm=0)
    vertex_emulator.reset()
    assert vertex_emulator.requests() == [] and vertex_emulator.stats().accepted == 0
    assert client.models.generate_content(model=MODEL, contents="hi").text


def test_config_points_at_the_emulator(vertex_emulator: VertexEmulator) -> None:
    config = vertex_emulator.config(model="gemini-2.5-pro")
    assert isinstance(config, GreyCloudConfig)
    assert config.endpoint == vertex_emulator.base_url
    assert (config.project_id, config.location, config.api_version) == (
        "test-project",
        "us-central1",
        "v1",
    )
    assert config.model == "gemini-2.5-pro"


def test_start_stop_without_with() -> None:
    emu = VertexEmulator(latency=0.05).start()
    try:
        sdk = vertex_client(emu)
        started = time.perf_counter()
        assert sdk.models.generate_content(model=MODEL, contents="hi").text
        assert time.perf_counter() - started >= 0.05
        sdk.close()
    finally:
        emu.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url


def test_unknown_route_is_404(vertex_emulator: VertexEmulator) -> None:
    status, body = _post(f"{vertex_emulator.base_url}/v1/nothing/here", {})
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"


def test_stop_cuts_open_streams_and_restart_works() -> None:
    emu = VertexEmulator(event_delay=0.1).start()
    emu.set_response_text("word " * 200)  # about 40 events: 4 s of stream
    sdk = vertex_client(emu)
    stream = sdk.models.generate_content_stream(model=MODEL, contents="slow")
    next(stream)  # the stream is open on the server now
    started = time.perf_counter()
    emu.stop()
    assert time.perf_counter() - started < 2.0
    with pytest.raises(httpx2.TransportError):
        list(stream)
    sdk.close()
    emu.event_delay = 0.0
    with emu:
        again = vertex_client(emu)
        assert again.models.generate_content(model=MODEL, contents="hi").text
        again.close()
    with pytest.raises(RuntimeError, match="already running"), emu:
        emu.start()


def test_a_client_that_leaves_a_stream_is_a_quiet_debug_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with VertexEmulator(event_delay=0.02) as emulator:
        emulator.set_response_text("word " * 300)
        client = emulator.sdk_client()
        stream = client.models.generate_content_stream(model=MODEL, contents="hi")
        next(iter(stream))
        stream.close()  # the client walks away mid-stream
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            "left the stream" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.02)
        client.close()
    left = [r for r in caplog.records if "left the stream" in r.getMessage()]
    assert [r.levelno for r in left] == [logging.DEBUG]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
