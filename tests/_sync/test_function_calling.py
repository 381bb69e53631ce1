# DO NOT EDIT: generated from tests/_async/test_function_calling.py by tools/generate.py.
# Change tests/_async/test_function_calling.py and run `make generate`.
# output-sha256: c9d43b18a4930aee
"""Function calling run by greycloud one hop at a time, checked on what reached the emulator.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from google.genai import types

from greycloud import ConfigError, GreyCloudClient, SyncVertexRateLimiter
from greycloud._limiter.core import Booking, LimiterCore
from greycloud._sync.limiter_store import MemoryStore
from greycloud.testing import Fault, RequestRecord, VertexEmulator

MODEL = "gemini-2.5-flash"
FAST = {"base_delay": 0.01, "max_delay": 0.05}
WEATHER_THEN_CONVERT = [
    {"name": "get_weather", "args": {"city": "Paris"}},
    {"name": "convert", "args": {"celsius": 21.0}},
]


class CountingStore(MemoryStore):
    """The limiter's own in-memory store, counting what passes through it (nothing changed)."""

    def __init__(self, core: LimiterCore) -> None:
        super().__init__(core)
        self.finished: list[bool] = []
        self.reconciled: list[int] = []

    def reconcile(
        self, booking: Booking, actual: int, details: Mapping[str, int] | None = None
    ) -> None:
        self.reconciled.append(actual)
        super().reconcile(booking, actual, details)

    def release(self, booking: Booking, success: bool) -> None:
        self.finished.append(success)
        super().release(booking, success)


class Functions:
    """The user's functions, recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_weather(self, city: str) -> dict[str, Any]:
        """The weather in a city."""
        self.calls.append(("get_weather", {"city": city}))
        return {"city": city, "celsius": 21}

    def convert(self, celsius: int) -> float:
        """Celsius to Fahrenheit."""
        self.calls.append(("convert", {"celsius": celsius}))
        return celsius * 9 / 5 + 32

    def tools(self) -> list[Any]:
        return [self.get_weather, self.convert]


@pytest.fixture
def limiter() -> SyncVertexRateLimiter:
    limiter = SyncVertexRateLimiter(rpm=100_000, tpm=100_000_000, max_concurrency=64)
    limiter._store = CountingStore(limiter._core)
    return limiter


@pytest.fixture
def store(limiter: SyncVertexRateLimiter) -> CountingStore:
    assert isinstance(limiter._store, CountingStore)
    return limiter._store


@pytest.fixture
def client(
    vertex_emulator: VertexEmulator, limiter: SyncVertexRateLimiter
) -> Iterator[GreyCloudClient]:
    config = vertex_emulator.config()
    with GreyCloudClient(
        config, credentials=vertex_emulator.credentials, rate_limiter=limiter
    ) as client:
        yield client


def generate_calls(emulator: VertexEmulator) -> list[RequestRecord]:
    return [r for r in emulator.requests() if "enerateContent" in r.path]


def body_of(record: RequestRecord) -> dict[str, Any]:
    assert isinstance(record.body, dict)
    return record.body


def replies_in(record: RequestRecord) -> list[dict[str, Any]]:
    return [
        part["functionResponse"]
        for content in body_of(record)["contents"]
        for part in content["parts"]
        if "functionResponse" in part
    ]


def has_function_reply(record: RequestRecord) -> bool:
    return bool(replies_in(record))


def test_three_hops_are_three_limited_requests_with_their_own_usage(
    client: GreyCloudClient, vertex_emulator: VertexEmulator, store: CountingStore
) -> None:
    vertex_emulator.script_function_calls(WEATHER_THEN_CONVERT)
    functions = Functions()
    response = client.generate_with_retry(
        "How warm is Paris in Fahrenheit?", tools=functions.tools(), **FAST
    )

    assert response.text
    assert functions.calls == [("get_weather", {"city": "Paris"}), ("convert", {"celsius": 21})]
    calls = generate_calls(vertex_emulator)
    assert len(calls) == 3
    # Each hop passed the limiter on its own and was reconciled with its own usage.
    assert store.finished == [True, True, True]
    prompts = [vertex_emulator_prompt(r) for r in calls]
    assert store.reconciled == prompts
    assert prompts[0] < prompts[1] < prompts[2]
    # Google's own loop was off; the declarations went on the wire every time.
    for record in calls:
        declared = body_of(record)["tools"][0]["functionDeclarations"]
        assert {d["name"] for d in declared} == {"get_weather", "convert"}
    assert [r["name"] for r in replies_in(calls[2])] == ["get_weather", "convert"]
    assert replies_in(calls[2])[1]["response"] == {"result": 69.8}
    # The exchange is reported as google-genai reports it.
    history = response.automatic_function_calling_history
    assert history is not None
    assert [c.role for c in history] == ["user", "model", "user", "model", "user"]
    assert history[1].parts and history[1].parts[0].function_call is not None
    assert history[1].parts[0].function_call.name == "get_weather"


def vertex_emulator_prompt(record: RequestRecord) -> int:
    """The prompt tokens the emulator counted for a request (what the limiter reconciles)."""
    from greycloud.testing._answers import prompt_tokens

    return prompt_tokens(body_of(record))


def test_a_429_on_hop_two_runs_each_function_exactly_once(
    client: GreyCloudClient, vertex_emulator: VertexEmulator, store: CountingStore
) -> None:
    vertex_emulator.script_function_calls(WEATHER_THEN_CONVERT)
    vertex_emulator.inject(Fault.status(429), times=2, match=has_function_reply)
    functions = Functions()
    response = client.generate_with_retry("Paris?", tools=functions.tools(), **FAST)

    assert response.text
    assert functions.calls == [("get_weather", {"city": "Paris"}), ("convert", {"celsius": 21})]
    assert [r.status for r in generate_calls(vertex_emulator)] == [200, 429, 429, 200, 200]
    assert store.finished == [True, False, False, True, True]


def test_disable_returns_the_function_call_to_the_caller(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_function_calls(WEATHER_THEN_CONVERT)
    functions = Functions()
    response = client.generate_with_retry(
        "Paris?",
        tools=functions.tools(),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        **FAST,
    )
    assert functions.calls == []
    assert response.function_calls is not None
    assert [call.name for call in response.function_calls] == ["get_weather"]
    assert response.automatic_function_calling_history is None
    assert len(generate_calls(vertex_emulator)) == 1


def test_maximum_remote_calls_stops_as_google_genai_does(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_function_calls(WEATHER_THEN_CONVERT)
    functions = Functions()
    config = types.GenerateContentConfig(
        tools=functions.tools(),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(maximum_remote_calls=2),
    )
    response = client.generate_content("Paris?", config=config)
    # Two requests; the second answer's call is left to the caller, its function not run.
    assert len(generate_calls(vertex_emulator)) == 2
    assert functions.calls == [("get_weather", {"city": "Paris"})]
    assert response.function_calls is not None and response.function_calls[0].name == "convert"


def test_a_function_that_raises_is_reported_to_the_model(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_function_calls([{"name": "get_weather", "args": {"city": "Atlantis"}}])

    def get_weather(city: str) -> str:
        raise LookupError(f"no such city: {city}")

    response = client.generate_with_retry("Atlantis?", tools=[get_weather], **FAST)
    assert response.text
    [reply] = replies_in(generate_calls(vertex_emulator)[-1])
    assert reply["name"] == "get_weather"
    assert "no such city: Atlantis" in reply["response"]["error"]


def test_streaming_with_functions_streams_the_final_answer(
    client: GreyCloudClient, vertex_emulator: VertexEmulator, store: CountingStore
) -> None:
    vertex_emulator.script_function_calls(WEATHER_THEN_CONVERT)
    functions = Functions()
    pieces = [
        piece
        for piece in client.generate_with_retry(
            "Paris?", streaming=True, tools=functions.tools(), **FAST
        )
    ]
    assert functions.calls == [("get_weather", {"city": "Paris"}), ("convert", {"celsius": 21})]
    streams = [r for r in vertex_emulator.requests() if ":streamGenerateContent" in r.path]
    assert len(streams) == 3 and len(store.finished) == 3
    # The text is the final answer's: the same request answered whole gives the same text.
    final = client.generate_content(body_of(streams[2])["contents"])
    assert "".join(pieces) == final.text


def test_function_arguments_follow_the_annotations(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_function_calls([{"name": "repeat", "args": {"word": "hi", "times": 3}}])
    seen: list[Any] = []

    def repeat(word: str, times: int) -> str:
        seen.append(times)
        return word * times

    client.generate_content("Repeat hi three times.", tools=[repeat])
    assert seen == [3] and isinstance(seen[0], int)
    [reply] = replies_in(generate_calls(vertex_emulator)[-1])
    assert reply["response"] == {"result": "hihihi"}


def test_bad_function_calling_settings_fail_before_any_request(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    with pytest.raises(ConfigError, match="retry"):
        client.generate_with_retry(
            "hi",
            config=types.GenerateContentConfig(
                http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=5))
            ),
        )
    assert vertex_emulator.requests() == []


def test_a_stream_cut_after_the_call_does_not_run_the_function_twice(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_function_calls(WEATHER_THEN_CONVERT[:1])
    vertex_emulator.inject(Fault.cut_stream(after_events=1), path=":streamGenerateContent")
    functions = Functions()
    pieces = [
        piece
        for piece in client.generate_with_retry(
            "Paris?", streaming=True, tools=functions.tools(), **FAST
        )
    ]
    assert "".join(pieces)
    assert functions.calls == [("get_weather", {"city": "Paris"})]
    streams = [r for r in vertex_emulator.requests() if ":streamGenerateContent" in r.path]
    assert len(streams) == 3  # the call (cut, then again), then the answer
    assert len(replies_in(streams[2])) == 1


def test_a_call_to_an_unknown_function_is_reported_to_the_model(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_function_calls([{"name": "get_wether", "args": {"city": "Rome"}}])
    functions = Functions()
    response = client.generate_with_retry("Rome?", tools=functions.tools(), **FAST)
    assert response.text and functions.calls == []
    [reply] = replies_in(generate_calls(vertex_emulator)[-1])
    assert "no function named 'get_wether'" in reply["response"]["error"]
