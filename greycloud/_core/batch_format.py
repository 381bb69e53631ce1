"""Batch input and output lines (pure, no I/O), shared by both batch clients.

Input: one JSON object per line, ``{"key": ID, "request": GenerateContentRequest}``, the request
in the camelCase JSON of the Vertex AI API (``contents``, ``generationConfig``,
``systemInstruction``, ``safetySettings``, ...). Vertex AI copies every field of an input line
other than ``request`` into its prediction line, so ``key`` is how a result finds its request.

Output (``predictions.jsonl``): the input line's extra fields plus ``request``, ``response``
(a GenerateContentResponse) and ``status`` (empty on success, the error otherwise).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import pydantic
from google.genai import _api_client, _common, types
from google.genai import models as sdk_models

from ..errors import BatchInputError
from .cache_rules import model_id
from .json_lines import LineProblem, parse_json_line
from .request import is_content

KEY_FIELD = "key"
PREDICTIONS_FILE = "predictions.jsonl"

# GenerateContentRequest fields, by both spellings proto JSON accepts, and how to check them.
_REQUEST_FIELDS: dict[str, tuple[type[pydantic.BaseModel] | None, bool]] = {
    # camelCase name: (SDK type of the value or of each item, whether it is a list)
    "contents": (types.Content, True),
    "systemInstruction": (types.Content, False),
    "generationConfig": (types.GenerationConfig, False),
    "safetySettings": (types.SafetySetting, True),
    "tools": (types.Tool, True),
    "toolConfig": (types.ToolConfig, False),
    "cachedContent": (None, False),
    "labels": (None, False),
}
_SNAKE = {
    "system_instruction": "systemInstruction",
    "generation_config": "generationConfig",
    "safety_settings": "safetySettings",
    "tool_config": "toolConfig",
    "cached_content": "cachedContent",
}


class BatchResult(NamedTuple):
    """One prediction line: the request's id, and its response or its error (one is None)."""

    request_id: str | None
    response: types.GenerateContentResponse | None
    error: str | None


def _json(model: pydantic.BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _reason(exc: pydantic.ValidationError, where: str) -> str:
    problem = exc.errors()[0]
    path = ".".join(str(part) for part in (where, *problem["loc"]) if part != "")
    return f"{path}: {problem['msg']} (got {problem.get('input')!r})"


def _check(value: Any, kind: type[pydantic.BaseModel], where: str) -> Any:
    try:
        return _json(value if isinstance(value, kind) else kind.model_validate(value))
    except pydantic.ValidationError as exc:
        raise ValueError(_reason(exc, where)) from None


def _part(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return {"text": value}
    return _check(value, types.Part, where)


def content_json(value: Any, where: str, role: str | None = "user") -> dict[str, Any]:
    """One Content from a string, a Part, a Content, a dict or a list of parts."""
    if is_content(value):
        content: dict[str, Any] = _check(value, types.Content, where)
    else:
        items = value if isinstance(value, list) else [value]
        content = {"parts": [_part(item, f"{where}.parts.{i}") for i, item in enumerate(items)]}
        if role is not None:
            content["role"] = role
    if not content.get("parts"):
        raise ValueError(f"{where} has no parts")
    return content


def contents_json(value: Any) -> list[dict[str, Any]]:
    """The ``contents`` list from anything google-genai accepts as contents."""
    if value is None or (isinstance(value, (str, list)) and not value):
        raise ValueError("contents is empty")
    if isinstance(value, list) and any(is_content(item) for item in value):
        return [content_json(item, f"contents.{i}") for i, item in enumerate(value)]
    return [content_json(value, "contents.0")]


def _field_json(name: str, value: Any) -> Any:
    kind, many = _REQUEST_FIELDS[name]
    if name == "contents":
        return contents_json(value)
    if name == "systemInstruction":
        return content_json(value, name, role=None)
    if kind is None:
        return value
    if many:
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list")
        return [_check(item, kind, f"{name}.{i}") for i, item in enumerate(value)]
    return _check(value, kind, name)


def _config_fields(config: Any) -> dict[str, Any]:
    """A GenerateContentConfig (object or dict) as request JSON fields, converted by
    google-genai itself: what a batch line carries is what ``generate_content`` would send."""
    try:
        checked = (
            config
            if isinstance(config, types.GenerateContentConfig)
            else types.GenerateContentConfig.model_validate(config)
        )
    except pydantic.ValidationError as exc:
        raise ValueError(_reason(exc, "config")) from None
    fields: dict[str, Any] = {}
    generation = sdk_models._GenerateContentConfig_to_vertex(_converter(), checked, fields)
    if generation:
        fields["generationConfig"] = generation
    converted: dict[str, Any] = _common.encode_unserializable_types(_common.convert_to_dict(fields))
    return converted


@functools.cache
def _converter() -> _api_client.BaseApiClient:
    """An offline Vertex AI client for google-genai's request conversion (never sends)."""
    return _api_client.BaseApiClient(vertexai=True, api_key="unused")


def request_json(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A checked GenerateContentRequest in camelCase JSON, from request fields in either case.

    ``config`` (a GenerateContentConfig, as google-genai takes it) is spread into the request.
    Raises ``ValueError`` saying what is wrong.
    """
    merged: dict[str, Any] = {}
    from_config: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "config":
            if value is not None:
                from_config = _config_fields(value)
            continue
        camel = _SNAKE.get(name, name)
        if camel not in _REQUEST_FIELDS:
            raise ValueError(f"unknown field {name!r} in a GenerateContentRequest")
        if camel in merged:
            raise ValueError(f"{camel} is given twice")
        merged[camel] = value
    if "contents" not in merged:
        raise ValueError("contents is missing")
    twice = sorted(set(merged) & set(from_config))
    if twice:
        raise ValueError(f"{twice[0]} is given twice (also in config)")
    checked = {
        name: _field_json(name, value) for name, value in merged.items() if value is not None
    }
    return {**checked, **from_config}


def request_line(item: Any, index: int, model: str) -> dict[str, Any]:
    """The input line for one request given as an ``InlinedRequest`` or a dict.

    A dict is a request (``{"contents": ..., "generationConfig": ...}``, or google-genai's
    ``{"contents": ..., "config": ...}``), optionally with a ``key``; or a whole line
    ``{"key": ..., "request": {...}, ...}`` whose other fields are kept. Raises ValueError.
    """
    key: Any = None
    extra: dict[str, Any] = {}
    if isinstance(item, types.InlinedRequest):
        if item.model is not None and model_id(item.model) != model_id(model):
            raise ValueError(f"model {item.model!r} differs from the job's model {model!r}")
        key = (item.metadata or {}).get(KEY_FIELD)
        request = request_json({"contents": item.contents, "config": item.config})
    elif isinstance(item, Mapping):
        fields = dict(item)
        key = fields.pop(KEY_FIELD, None)
        if "request" in fields:
            body = fields.pop("request")
            if not isinstance(body, Mapping):
                raise ValueError("request must be a JSON object")
            extra = fields
            request = request_json(body)
        else:
            request = request_json(fields)
    else:
        raise ValueError(
            f"expected a google.genai.types.InlinedRequest or a dict, got {type(item).__name__}"
        )
    if key is None:
        key = f"request-{index}"
    if not isinstance(key, str) or not key:
        raise ValueError(f"{KEY_FIELD} must be a non-empty string, got {key!r}")
    return {**extra, KEY_FIELD: key, "request": request}


def request_lines(items: Sequence[Any], model: str) -> list[dict[str, Any]]:
    """Input lines for a list of requests; ``BatchInputError`` names the first bad one."""
    if isinstance(items, (str, bytes, Mapping)) or not items:
        raise BatchInputError(0, "batch_requests must be a non-empty list of requests")
    lines = []
    first_seen: dict[str, int] = {}  # key -> index
    for index, item in enumerate(items):
        try:
            line = request_line(item, index, model)
        except ValueError as exc:
            raise BatchInputError(index, str(exc)) from None
        key = line[KEY_FIELD]
        if key in first_seen:
            raise BatchInputError(
                index, f"{KEY_FIELD} {key!r} is already used at index {first_seen[key]}"
            )
        first_seen[key] = index
        lines.append(line)
    return lines


def check_jsonl(text: str, model: str) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Input lines from JSONL text (one request or line per row; blank rows skipped), and
    every problem found as ``(line number, reason)``; a line with a problem is left out."""
    lines: list[dict[str, Any]] = []
    problems: list[tuple[int, str]] = []
    first_seen: dict[str, int] = {}  # key -> line number
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = parse_json_line(raw)
        except LineProblem as exc:
            problems.append((number, str(exc)))
            continue
        try:
            # A request without a key is named after its index: request-<line - 1>.
            line = request_line(item, number - 1, model)
        except ValueError as exc:
            problems.append((number, str(exc)))
            continue
        key = line[KEY_FIELD]
        if key in first_seen:
            problems.append(
                (number, f"{KEY_FIELD} {key!r} is already used on line {first_seen[key]}")
            )
            continue
        first_seen[key] = number
        lines.append(line)
    if not lines and not problems:
        problems.append((1, "the file holds no requests"))
    return lines, problems


def lines_from_jsonl(text: str, model: str) -> list[dict[str, Any]]:
    """Input lines from JSONL text; ``BatchInputError`` names the first bad line."""
    lines, problems = check_jsonl(text, model)
    if problems:
        number, reason = problems[0]
        raise BatchInputError(number, reason, line=True)
    return lines


def to_jsonl(lines: Iterable[Mapping[str, Any]]) -> bytes:
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    return text.encode()


def prediction_files(names: Iterable[str]) -> list[str]:
    """The ``predictions.jsonl`` objects among ``names`` (Vertex AI may shard them), in order."""
    return sorted(name for name in names if name.rsplit("/", 1)[-1].endswith(PREDICTIONS_FILE))


def request_schemas(items: Sequence[Any]) -> dict[str, Any]:
    """The response schema each request asked for in its ``config``, by key (a pydantic class
    cannot travel through the JSON lines; results use it to fill ``parsed`` as google-genai
    does). Requests without one are left out."""
    schemas: dict[str, Any] = {}
    for index, item in enumerate(items):
        if isinstance(item, types.InlinedRequest):
            config: Any = item.config
            key = (item.metadata or {}).get(KEY_FIELD)
        elif isinstance(item, Mapping):
            config = item.get("config")
            key = item.get(KEY_FIELD)
        else:
            continue
        if isinstance(config, Mapping):
            schema = config.get("response_schema") or config.get("response_json_schema")
        else:
            schema = getattr(config, "response_schema", None) or getattr(
                config, "response_json_schema", None
            )
        if schema is not None:
            schemas[key if key is not None else f"request-{index}"] = schema
    return schemas


def parsed_value(text: str | None, schema: Any) -> Any:
    """``response.parsed`` for ``text`` as google-genai fills it: an instance of a pydantic
    class (or enum, or typed value) given as the schema, the plain JSON value for a schema
    given as a dict or ``types.Schema``, None when the text does not fit."""
    if text is None or schema is None:
        return None
    try:
        if isinstance(schema, type) and issubclass(schema, pydantic.BaseModel):
            return schema.model_validate_json(text)
        if isinstance(schema, (Mapping, types.Schema)):
            return json.loads(text)
        return pydantic.TypeAdapter(schema).validate_json(text)
    except (ValueError, TypeError):
        return None


def _line_schema(line: Mapping[str, Any]) -> Any:
    """The schema a prediction line's own request carries (JSON, so ``parsed`` is JSON)."""
    request = line.get("request")
    config = request.get("generationConfig") if isinstance(request, Mapping) else None
    if not isinstance(config, Mapping):
        return None
    for name in ("responseSchema", "response_schema", "responseJsonSchema", "response_json_schema"):
        if config.get(name):
            return config[name]
    return None


def parse_prediction(raw: str, schemas: Mapping[str, Any] | None = None) -> BatchResult:
    """One prediction line as (request id, response, error); ``parsed`` is filled from the
    request's schema, the one in ``schemas`` (by key) when given."""
    try:
        line = json.loads(raw)
    except ValueError as exc:
        return BatchResult(None, None, f"unreadable prediction line ({exc})")
    if not isinstance(line, dict):
        return BatchResult(None, None, "unreadable prediction line (not a JSON object)")
    key = line.get(KEY_FIELD)
    request_id = None if key is None else str(key)
    status = line.get("status")
    body = line.get("response")
    if status or not isinstance(body, dict):
        return BatchResult(request_id, None, str(status or "the line has no response"))
    try:
        response = types.GenerateContentResponse.model_validate(body)
    except pydantic.ValidationError as exc:
        return BatchResult(request_id, None, f"unreadable response ({_reason(exc, 'response')})")
    schema = (schemas or {}).get(request_id or "") or _line_schema(line)
    if schema is not None:
        response.parsed = parsed_value(_text(response), schema)
    return BatchResult(request_id, response, None)


def _text(response: types.GenerateContentResponse) -> str | None:
    candidates = response.candidates
    content = candidates[0].content if candidates else None
    texts = [part.text for part in (content.parts or []) if part.text] if content else []
    return "".join(texts) if texts else None


def parse_predictions(text: str, schemas: Mapping[str, Any] | None = None) -> list[BatchResult]:
    return [parse_prediction(raw, schemas) for raw in text.splitlines() if raw.strip()]
