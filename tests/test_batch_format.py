"""The pure parts of caching and batch jobs: request and prediction lines, size and MIME rules."""

from __future__ import annotations

import json

import pytest
from google.genai import types

from greycloud import BatchInputError
from greycloud._core.batch_format import (
    lines_from_jsonl,
    parse_prediction,
    prediction_files,
    request_line,
    request_lines,
)
from greycloud._core.cache_rules import guess_mime_type, min_cache_tokens

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
