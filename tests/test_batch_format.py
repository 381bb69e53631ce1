"""The pure parts of caching and batch jobs: request and prediction lines, size and MIME rules."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pydantic
import pytest
from google.genai import errors, types

from greycloud import BatchInputError
from greycloud._core.batch_format import (
    lines_from_jsonl,
    parse_prediction,
    prediction_files,
    request_line,
    request_lines,
)
from greycloud._core.cache_rules import guess_mime_type, min_cache_tokens
from greycloud.testing import VertexEmulator

MODEL = "gemini-2.5-flash"


def test_inlined_request_config_is_split_as_the_api_expects() -> None:
    item = types.InlinedRequest(
        contents=[types.Content(role="user", parts=[types.Part(text="Hi")])],
        metadata={"key": "k1"},
        config=types.GenerateContentConfig(
            system_instruction="Be brief.",
            temperature=0.5,
            response_mime_type="application/json",
            thinking_config=types.ThinkingConfig(thinking_budget=0),
            safety_settings=[
                types.SafetySetting(
                    category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                    threshold=types.HarmBlockThreshold.BLOCK_NONE,
                )
            ],
            cached_content="projects/p/locations/l/cachedContents/1",
        ),
    )
    assert request_line(item, 0, MODEL) == {
        "key": "k1",
        "request": {
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]},
            "generationConfig": {
                "temperature": 0.5,
                "responseMimeType": "application/json",
                # As google-genai sends it (Vertex AI reads both spellings).
                "thinkingConfig": {"thinking_budget": 0},
            },
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "cachedContent": "projects/p/locations/l/cachedContents/1",
        },
    }


def test_snake_case_dicts_and_part_lists_are_normalised() -> None:
    line = request_line(
        {
            "contents": [
                "Look at",
                {"file_data": {"file_uri": "gs://b/x.png", "mime_type": "image/png"}},
            ],
            "system_instruction": "Sys",
            "generation_config": {"max_output_tokens": 5},
        },
        3,
        MODEL,
    )
    assert line == {
        "key": "request-3",
        "request": {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "Look at"},
                        {"fileData": {"fileUri": "gs://b/x.png", "mimeType": "image/png"}},
                    ],
                }
            ],
            "systemInstruction": {"parts": [{"text": "Sys"}]},
            "generationConfig": {"maxOutputTokens": 5},
        },
    }


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"contents": [{"role": "user", "parts": []}]}, "has no parts"),
        ({"generationConfig": {}}, "contents is missing"),
        ({"request": "Hello"}, "request must be a JSON object"),
        ({"request": {"contents": "y", "topK": 3}}, "unknown field 'topK'"),
        ({"contents": "x", "systemInstruction": "a", "system_instruction": "b"}, "given twice"),
        ({"key": 7, "contents": "x"}, "key must be a non-empty string"),
        (types.InlinedRequest(model="gemini-2.5-pro", contents="x"), "differs from the job's"),
        ({"contents": "x", "config": {"http_options": {"timeout": 5}}}, None),
    ],
)
def test_invalid_requests_say_why(item: object, reason: str | None) -> None:
    if reason is None:  # client-side settings are dropped, not sent
        assert request_line(item, 0, MODEL)["request"] == {
            "contents": [{"role": "user", "parts": [{"text": "x"}]}]
        }
        return
    with pytest.raises(ValueError, match=reason):
        request_line(item, 0, MODEL)


def test_empty_batches_and_jsonl_files_are_rejected() -> None:
    with pytest.raises(BatchInputError, match="non-empty list"):
        request_lines([], MODEL)
    with pytest.raises(BatchInputError, match="no requests"):
        lines_from_jsonl("\n\n", MODEL)
    with pytest.raises(BatchInputError, match=r"line 2: .*already used on line 1"):
        lines_from_jsonl('{"key": "a", "contents": "x"}\n{"key": "a", "contents": "y"}\n', MODEL)


def test_prediction_lines() -> None:
    ok = parse_prediction(
        json.dumps(
            {
                "key": "a",
                "status": "",
                "request": {},
                "response": {
                    "candidates": [{"content": {"role": "model", "parts": [{"text": "Yes."}]}}],
                    "usageMetadata": {"promptTokenCount": 3},
                },
            }
        )
    )
    assert ok.request_id == "a" and ok.error is None
    assert ok.response is not None and ok.response.text == "Yes."
    failed = parse_prediction(json.dumps({"key": "b", "status": "Bad Request: empty contents"}))
    assert failed == ("b", None, "Bad Request: empty contents")
    assert parse_prediction("not json").error is not None
    assert prediction_files(
        ["o/x/predictions.jsonl", "o/input.jsonl", "o/a/predictions.jsonl"]
    ) == [
        "o/a/predictions.jsonl",
        "o/x/predictions.jsonl",
    ]


def test_minimum_cache_sizes() -> None:
    assert min_cache_tokens("gemini-2.5-flash") == 2048
    assert min_cache_tokens("publishers/google/models/gemini-2.5-pro") == 2048
    assert min_cache_tokens("gemini-2.0-flash-001") == 2048
    assert min_cache_tokens("gemini-1.5-pro-002") == 32_769
    assert min_cache_tokens("gemini-2.5-flash", vertexai=False) == 1024
    assert min_cache_tokens("gemini-2.5-pro", vertexai=False) == 4096
    assert min_cache_tokens("some-future-model") == 1024


def test_mime_type_guessing() -> None:
    assert guess_mime_type("gs://b/report.PDF") == "application/pdf"
    assert guess_mime_type("gs://b/dir.with.dots/clip.mp4") == "video/mp4"
    assert guess_mime_type("gs://b/notes.md") == "text/markdown"
    assert guess_mime_type("gs://b/README") is None
    assert guess_mime_type("gs://b/data.nosuchext") is None


class _Answer(pydantic.BaseModel):
    text: str
    score: int


def _weather(city: str) -> str:
    """The weather in a city."""
    return "sun"


# A value for every GenerateContentConfig field that reaches the request, in groups that may
# be sent together (response_schema and response_json_schema exclude each other, and so do
# routing_config and model_selection_config).
_CONFIG_GROUPS: list[dict[str, Any]] = [
    {
        "system_instruction": "Be brief.",
        "temperature": 0.3,
        "top_p": 0.8,
        "top_k": 20,
        "candidate_count": 1,
        "max_output_tokens": 64,
        "stop_sequences": ["END"],
        "response_logprobs": True,
        "logprobs": 2,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "seed": 5,
        "response_mime_type": "application/json",
        "response_schema": _Answer,
        "routing_config": {"auto_mode": {"model_routing_preference": "BALANCED"}},
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "tools": [_weather, types.Tool(google_search=types.GoogleSearch())],
        "tool_config": {"function_calling_config": {"mode": "AUTO"}},
        "labels": {"team": "search"},
        "cached_content": "projects/p/locations/l/cachedContents/1",
        "thinking_config": {"thinking_budget": 128, "include_thoughts": True},
        "media_resolution": "MEDIA_RESOLUTION_LOW",
        "audio_timestamp": True,
    },
    {
        "response_mime_type": "application/json",
        "response_json_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "model_selection_config": {"feature_selection_preference": "PRIORITIZE_QUALITY"},
        "response_modalities": ["TEXT"],
        "speech_config": "Kore",
        "image_config": {"aspect_ratio": "16:9"},
        "thinking_config": {"thinking_level": "LOW"},
        "service_tier": "standard",
        "model_armor_config": {"prompt_template_name": "projects/p/locations/l/templates/t"},
        "audio_transcription_config": {"language_codes": ["en-US"]},
        "generation_output_config": {"output_uri_prefix": "gs://bucket/media/"},
        "continuation_token": b"token",
    },
    {"response_schema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}},
    {"response_schema": types.Schema(type=types.Type.STRING, enum=["yes", "no"])},
]
# Fields google-genai keeps on the client side, or that it refuses on Vertex AI.
_NOT_IN_THE_REQUEST = {
    "http_options",
    "should_return_http_response",
    "automatic_function_calling",
    "automatic_continuation",
    "enable_enhanced_civic_answers",
    "store",
}


def test_every_config_field_is_covered() -> None:
    covered = set().union(*_CONFIG_GROUPS) | _NOT_IN_THE_REQUEST
    assert set(types.GenerateContentConfig.model_fields) <= covered


@pytest.mark.parametrize("fields", _CONFIG_GROUPS, ids=lambda f: ",".join(sorted(f))[:40])
def test_batch_lines_match_what_generate_content_sends(
    vertex_emulator: VertexEmulator, fields: dict[str, Any]
) -> None:
    config = types.GenerateContentConfig(
        **fields, automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    sdk = vertex_emulator.sdk_client()
    # What was sent is recorded even when the emulator refuses it (the cache does not exist).
    with contextlib.suppress(errors.ClientError):
        sdk.models.generate_content(model=MODEL, contents="Hi", config=config)
    sent = vertex_emulator.requests()[-1].body
    line = request_line(types.InlinedRequest(contents="Hi", config=config), 0, MODEL)
    assert line["request"] == sent
