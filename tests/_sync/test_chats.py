# DO NOT EDIT: generated from tests/_async/test_chats.py by tools/generate.py.
# Change tests/_async/test_chats.py and run `make generate`.
# output-sha256: defd34d4ae1d2a58
"""Chat sessions: every turn through generate_with_retry, the history kept as google-genai keeps it.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
from google.genai import errors, types

from greycloud import ConfigError, GreyCloudClient
from greycloud.testing import Fault, RequestRecord, VertexEmulator

MODEL = "gemini-2.5-flash"


class Verdict(pydantic.BaseModel):
    answer: str
    confidence: int


@pytest.fixture
def client(vertex_emulator: VertexEmulator) -> Iterator[GreyCloudClient]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, max_concurrency=64)
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


def generation_calls(emulator: VertexEmulator) -> list[RequestRecord]:
    return [r for r in emulator.requests() if "enerateContent" in r.path]


def sent_texts(record: RequestRecord) -> list[tuple[str, str]]:
    assert isinstance(record.body, dict)
    return [
        (content["role"], "".join(part.get("text", "") for part in content["parts"]))
        for content in record.body["contents"]
    ]


def texts(history: list[types.Content]) -> list[tuple[str | None, str]]:
    return [(c.role, "".join(p.text or "" for p in c.parts or [])) for c in history]


def test_each_turn_sends_the_history_and_records_the_answer(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    chat = client.chats.create(config=types.GenerateContentConfig(temperature=0.3))
    first = chat.send_message("Hello.")
    second = chat.send_message("And then?")
    assert texts(chat.get_history()) == [
        ("user", "Hello."),
        ("model", first.text),
        ("user", "And then?"),
        ("model", second.text),
    ]
    calls = generation_calls(vertex_emulator)
    assert sent_texts(calls[1]) == texts(chat.get_history())[:3]
    assert all(r.body["generationConfig"]["temperature"] == 0.3 for r in calls)  # type: ignore[index]
    assert calls[0].model == MODEL


def test_a_failed_turn_leaves_the_history_as_it_was(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    chat = client.chats.create(
        history=[
            {"role": "user", "parts": [{"text": "Hi."}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
        ]
    )
    before = chat.get_history()
    vertex_emulator.inject(Fault.status(400))
    with pytest.raises(errors.ClientError):
        chat.send_message("This one fails.")
    assert chat.get_history() == before
    chat.send_message("This one works.")
    assert texts(chat.get_history())[2] == ("user", "This one works.")
    assert len(chat.get_history()) == 4


def test_a_transient_failure_is_retried_inside_the_turn(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    chat = client.chats.create()
    vertex_emulator.inject(Fault.status(503))
    response = chat.send_message("Hello.")
    assert texts(chat.get_history())[1] == ("model", response.text)
    assert [r.status for r in generation_calls(vertex_emulator)] == [503, 200]


def test_a_streamed_turn_is_added_when_its_stream_ends(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    chat = client.chats.create()
    chunks = [chunk for chunk in chat.send_message_stream("Tell me a story.")]
    assert len(chunks) > 1
    story = "".join(chunk.text or "" for chunk in chunks)
    assert texts(chat.get_history()) == [("user", "Tell me a story."), ("model", story)]
    # The awaited form works as well.
    more = [chunk for chunk in chat.send_message_stream("More.")]
    assert texts(chat.get_history())[3] == ("model", "".join(c.text or "" for c in more))


def test_a_stream_abandoned_half_way_leaves_the_history_as_it_was(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    chat = client.chats.create()
    chat.send_message("Hello.")
    before = chat.get_history()
    stream = chat.send_message_stream("Tell me a long story.")
    for _ in stream:
        break
    stream.close()
    assert chat.get_history() == before
    assert client.rate_limiter.stats().in_flight == 0


def test_a_chat_runs_functions_and_keeps_the_exchange(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_function_calls([{"name": "get_weather", "args": {"city": "Oslo"}}])
    ran: list[str] = []

    def get_weather(city: str) -> str:
        """The weather in a city."""
        ran.append(city)
        return "snow"

    chat = client.chats.create(config={"tools": [get_weather]})
    response = chat.send_message("Weather in Oslo?")
    assert ran == ["Oslo"]
    roles = [c.role for c in chat.get_history()]
    assert roles == ["user", "model", "user", "model"]
    history = chat.get_history()
    assert history[1].parts and history[1].parts[0].function_call is not None
    assert history[2].parts and history[2].parts[0].function_response is not None
    assert history[3].parts and history[3].parts[0].text == response.text


def test_a_streamed_turn_that_ignores_the_call_history_keeps_only_the_answer(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    """As ``send_message`` does: the history gets the user's turn and the last hop's answer,
    not the function call of the first hop glued to it (a call with no reply after it)."""
    vertex_emulator.script_function_calls([{"name": "get_weather", "args": {"city": "Oslo"}}])

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "snow"

    config = {
        "tools": [get_weather],
        "automatic_function_calling": {"ignore_call_history": True},
    }
    chat = client.chats.create(config=config)
    text = "".join([chunk.text or "" for chunk in chat.send_message_stream("Oslo?")])
    history = chat.get_history()
    assert [c.role for c in history] == ["user", "model"]
    assert history[1].parts is not None
    assert [part.function_call for part in history[1].parts] == [None]
    assert history[1].parts[0].text == text


def test_structured_output_in_a_chat(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    chat = client.chats.create(
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Verdict
        )
    )
    response = chat.send_message("Is the sky blue?")
    assert isinstance(response.parsed, Verdict)
    body: Any = generation_calls(vertex_emulator)[-1].body
    assert set(body["generationConfig"]["responseSchema"]["properties"]) == {
        "answer",
        "confidence",
    }


def test_a_bad_history_is_refused(client: GreyCloudClient) -> None:
    with pytest.raises(ConfigError, match="role"):
        client.chats.create(history=[{"role": "system", "parts": [{"text": "x"}]}])
