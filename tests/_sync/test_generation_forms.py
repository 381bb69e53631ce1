# DO NOT EDIT: generated from tests/_async/test_generation_forms.py by tools/generate.py.
# Change tests/_async/test_generation_forms.py and run `make generate`.
# output-sha256: 762b5423447c512c
"""The forms a google-genai user writes: both streaming forms, ``config=``, structured output.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
from google.genai import types

from greycloud import ConfigError, GreyCloudClient
from greycloud.testing import Fault, RequestRecord, VertexEmulator

FAST = {"base_delay": 0.01, "max_delay": 0.05}
PROMPT = "Tell me about rivers."


class City(pydantic.BaseModel):
    name: str
    population: int
    rivers: list[str]


@pytest.fixture
def client(vertex_emulator: VertexEmulator) -> Iterator[GreyCloudClient]:
    config = vertex_emulator.config(
        rpm=100_000, tpm=100_000_000, max_concurrency=64, seed=7, top_p=0.9
    )
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


def generation_calls(emulator: VertexEmulator) -> list[RequestRecord]:
    return [r for r in emulator.requests() if "enerateContent" in r.path]


def sent_config(emulator: VertexEmulator) -> dict[str, Any]:
    body = generation_calls(emulator)[-1].body
    assert isinstance(body, dict)
    config: dict[str, Any] = body.get("generationConfig", {})
    return config


# -- both streaming forms ----------------------------------------------------------------------


def test_both_forms_of_generate_with_retry_streaming(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    whole = (client.generate_with_retry(PROMPT, **FAST)).text
    direct = [x for x in client.generate_with_retry(PROMPT, streaming=True, **FAST)]
    awaited = [x for x in client.generate_with_retry(PROMPT, streaming=True, **FAST)]
    assert "".join(direct) == "".join(awaited) == whole
    assert len(direct) > 1


def test_both_forms_of_generate_content_stream(client: GreyCloudClient) -> None:
    whole = (client.generate_content(PROMPT)).text
    direct = [x for x in client.generate_content_stream(PROMPT)]
    awaited = [x for x in client.generate_content_stream(PROMPT)]
    chunks = [x for x in client.generate_content_stream(PROMPT, return_chunks=True)]
    assert "".join(direct) == "".join(awaited) == whole
    assert all(isinstance(chunk, types.GenerateContentResponse) for chunk in chunks)


def test_a_stream_never_iterated_sends_nothing_and_holds_nothing(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "never awaited" or unclosed-resource warnings fail
        stream = client.generate_with_retry(PROMPT, streaming=True, **FAST)
        other = client.generate_content_stream(PROMPT)
        awaited = client.generate_with_retry(PROMPT, streaming=True, **FAST)
        del stream, other, awaited
        gc.collect()
    assert vertex_emulator.requests() == []
    assert client.rate_limiter.stats().in_flight == 0


def test_a_stream_left_half_way_frees_its_limiter_slot(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    stream = client.generate_with_retry(PROMPT, streaming=True, **FAST)
    for _ in stream:
        break
    stream.close()
    assert client.rate_limiter.stats().in_flight == 0
    assert [x for x in stream] == []  # a closed stream stays closed


def test_bad_arguments_fail_when_the_stream_is_made(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        client.generate_with_retry(PROMPT, streaming=True, temperature="hot")
    with pytest.raises(ConfigError, match="max_retries"):
        client.generate_with_retry(PROMPT, max_retries=-1)
    assert vertex_emulator.requests() == []


# -- config= -----------------------------------------------------------------------------------


def test_config_precedence_keyword_then_config_then_greycloud_default(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    config = types.GenerateContentConfig(temperature=0.2, max_output_tokens=80, top_k=5)
    before = config.model_dump()
    client.generate_with_retry(PROMPT, config=config, temperature=0.7, **FAST)
    sent = sent_config(vertex_emulator)
    assert sent["temperature"] == 0.7  # the keyword beats config=
    assert sent["maxOutputTokens"] == 80 and sent["topK"] == 5  # config= beats the default
    assert sent["seed"] == 7 and sent["topP"] == 0.9  # the GreyCloudConfig fills the rest
    assert config.model_dump() == before  # the caller's object is not changed

    client.generate_content(PROMPT, config={"top_p": 0.3, "seed": 11})
    sent = sent_config(vertex_emulator)
    assert sent["topP"] == 0.3 and sent["seed"] == 11


def test_config_reaches_both_stream_methods(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    config = types.GenerateContentConfig(temperature=0.1)
    [x for x in client.generate_content_stream(PROMPT, config=config)]
    assert sent_config(vertex_emulator)["temperature"] == 0.1
    [x for x in client.generate_with_retry(PROMPT, streaming=True, config=config, **FAST)]
    assert sent_config(vertex_emulator)["temperature"] == 0.1


def test_a_bad_config_is_refused_with_its_field(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    with pytest.raises(ConfigError, match="temprature"):
        client.generate_content(PROMPT, config={"temprature": 0.2})
    with pytest.raises(ConfigError, match="retries by itself"):
        client.generate_content(PROMPT, config={"http_options": {"retry_options": {"attempts": 3}}})
    assert vertex_emulator.requests() == []


def test_http_options_in_config_are_honoured_without_sdk_retries(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(503))
    config = {"http_options": {"timeout": 5000, "headers": {"x-trace": "abc"}}}
    response = client.generate_with_retry(PROMPT, config=config, **FAST)
    assert response.text
    calls = generation_calls(vertex_emulator)
    # greycloud retried (each attempt through the limiter); the SDK did not retry on its own.
    assert [r.status for r in calls] == [503, 200]
    assert all(r.headers.get("x-trace") == "abc" for r in calls)


# -- structured output -------------------------------------------------------------------------


def test_a_pydantic_schema_reaches_the_wire_and_fills_parsed(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    response = client.generate_with_retry(
        "Describe a city.",
        response_mime_type="application/json",
        response_schema=City,
        **FAST,
    )
    assert isinstance(response.parsed, City)
    assert response.parsed == City.model_validate_json(response.text or "")
    schema = sent_config(vertex_emulator)["responseSchema"]
    assert set(schema["properties"]) == {"name", "population", "rivers"}


def test_a_json_schema_dict_fills_parsed_with_json(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["answer", "score"],
    }
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=schema
    )
    response = client.generate_content("Rate it.", config=config)
    assert isinstance(response.parsed, dict)
    assert set(response.parsed) == {"answer", "score"}
    assert sent_config(vertex_emulator)["responseJsonSchema"] == schema


def test_a_streamed_structured_answer_joins_into_valid_json(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=City
    )
    pieces = [
        x for x in client.generate_with_retry("A city?", streaming=True, config=config, **FAST)
    ]
    City.model_validate(json.loads("".join(pieces)))
    assert "responseSchema" in sent_config(vertex_emulator)
