"""Function calling: the parts that differ between the two clients, and the pure bookkeeping."""

from __future__ import annotations

import datetime

import pydantic
import pytest
from google.genai import types

from greycloud import ConfigError, GreyCloudAsyncClient, GreyCloudClient
from greycloud._core.function_calling import arguments_for, plan
from greycloud.testing import VertexEmulator


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sun"


async def async_get_weather(city: str) -> str:
    """The weather in a city, found without blocking."""
    return f"rain in {city}"


async def test_the_async_client_runs_async_functions(vertex_emulator: VertexEmulator) -> None:
    vertex_emulator.script_function_calls(
        [{"name": "async_get_weather", "args": {"city": "Bergen"}}]
    )
    config = vertex_emulator.config()
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        response = await client.generate_content("Bergen?", tools=[async_get_weather])
    assert response.text
    body = vertex_emulator.requests()[-1].body
    assert isinstance(body, dict)
    reply = body["contents"][-1]["parts"][0]["functionResponse"]
    assert reply["response"] == {"result": "rain in Bergen"}


def test_the_sync_client_refuses_async_functions_before_sending(
    vertex_emulator: VertexEmulator,
) -> None:
    config = vertex_emulator.config()
    with (
        GreyCloudClient(config, credentials=vertex_emulator.credentials) as client,
        pytest.raises(ConfigError, match="async def"),
    ):
        client.generate_content("Bergen?", tools=[get_weather, async_get_weather])
    assert vertex_emulator.requests() == []


def test_the_loop_is_planned_as_google_genai_decides() -> None:
    tools: list[object] = [get_weather]
    loop = plan(types.GenerateContentConfig(tools=tools))  # type: ignore[arg-type]
    assert loop is not None and loop.maximum_remote_calls == 10 and loop.keep_history
    assert list(loop.functions) == ["get_weather"]
    off = types.AutomaticFunctionCallingConfig
    for automatic in (off(disable=True), off(maximum_remote_calls=0)):
        config = types.GenerateContentConfig(tools=tools, automatic_function_calling=automatic)  # type: ignore[arg-type]
        assert plan(config) is None
    declared = types.Tool(function_declarations=[types.FunctionDeclaration(name="other")])
    assert plan(types.GenerateContentConfig(tools=[get_weather, declared])) is None
    assert plan(types.GenerateContentConfig(temperature=0.1)) is None


class Place(pydantic.BaseModel):
    name: str
    lat: float


def test_arguments_are_converted_by_annotation() -> None:
    def visit(place: Place, when: datetime.date, guests: int, note) -> None:  # type: ignore[no-untyped-def]
        """Plan a visit."""

    arguments = arguments_for(
        visit,
        {
            "place": {"name": "Oslo", "lat": 59.9},
            "when": "2026-12-01",
            "guests": 2.0,
            "note": {"n": 3.0},
            "unknown": 1,
        },
    )
    assert arguments == {
        "place": Place(name="Oslo", lat=59.9),
        "when": datetime.date(2026, 12, 1),
        "guests": 2,
        "note": {"n": 3},
    }
    with pytest.raises(ValueError):
        arguments_for(visit, {"guests": 2.5})
