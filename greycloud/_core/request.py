"""Building a generation request, the same way for both clients (pure, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from google.genai import types

from ..config import THINKING_LEVELS, GreyCloudConfig, _check_choice, check_safety_settings
from ..errors import ConfigError

Contents = Any  # what google-genai accepts: str, Part, Content, dicts, or a list of these
SafetySettings = Sequence[types.SafetySetting | Mapping[str, Any]]

CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class GenerateRequest:
    """One generation call, resolved against the config: what is sent, and its token estimate."""

    model: str
    contents: Contents
    config: types.GenerateContentConfig | None  # None: nothing to configure
    estimated_tokens: int


def is_content(value: object) -> bool:
    """A whole message (``Content`` or its dict form) rather than a part of one."""
    return isinstance(value, types.Content) or (
        isinstance(value, Mapping) and ("parts" in value or "role" in value)
    )


def text_of(value: Any) -> str:
    """All text in contents of any accepted shape (used for estimates and search queries)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, types.Part):
        return value.text or ""
    if isinstance(value, types.Content):
        return "".join(text_of(part) for part in value.parts or [])
    if isinstance(value, Mapping):
        if "text" in value:
            return str(value["text"] or "")
        return text_of(value.get("parts"))
    if isinstance(value, Sequence):
        return "".join(text_of(item) for item in value)
    return ""


def estimate_tokens(*texts: Any) -> int:
    """A quick prompt-token estimate (about four characters a token), at least one."""
    chars = sum(len(text_of(text)) for text in texts)
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def safety_settings_list(settings: SafetySettings) -> list[types.SafetySetting]:
    check_safety_settings(settings)
    return [s if isinstance(s, types.SafetySetting) else types.SafetySetting(**s) for s in settings]


def vertex_search_tool(datastore: str) -> types.Tool:
    """The server-side retrieval tool that grounds answers in a Vertex AI Search datastore."""
    return types.Tool(
        retrieval=types.Retrieval(vertex_ai_search=types.VertexAISearch(datastore=datastore))
    )


def build_request(
    config: GreyCloudConfig,
    contents: Contents,
    *,
    model: str | None = None,
    system_instruction: Any = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_output_tokens: int | None = None,
    safety_settings: SafetySettings | None = None,
    tools: list[types.Tool] | None = None,
    thinking_level: str | None = None,
    cached_content: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> GenerateRequest:
    """Resolve call arguments against the config: a call argument wins over the config value.

    Safety settings: None sends nothing, ``[]`` sends an empty list. The Vertex AI Search
    retrieval tool is added when the config asks for tool grounding and no ``tools`` are passed.
    """
    if contents is None or (isinstance(contents, (str, list)) and not contents):
        raise ConfigError("contents", "is empty; pass a prompt string or a list of contents")
    system = system_instruction if system_instruction is not None else config.system_instruction
    safety = safety_settings if safety_settings is not None else config.safety_settings
    level = thinking_level if thinking_level is not None else config.thinking_level
    if tools is None and config.use_vertex_ai_search and config.grounding_mode == "tool":
        assert config.vertex_ai_search_datastore is not None  # checked by the config
        tools = [vertex_search_tool(config.vertex_ai_search_datastore)]

    fields: dict[str, Any] = {
        "system_instruction": system,
        "temperature": temperature if temperature is not None else config.temperature,
        "top_p": top_p if top_p is not None else config.top_p,
        "max_output_tokens": (
            max_output_tokens if max_output_tokens is not None else config.max_output_tokens
        ),
        "seed": config.seed,
        "safety_settings": None if safety is None else safety_settings_list(safety),
        "tools": tools,
        "thinking_config": None if level is None else thinking_config(level),
        "cached_content": cached_content,
        # greycloud owns retries: one SDK attempt per call, so every attempt passes the limiter.
    }
    fields.update(extra or {})
    fields = {key: value for key, value in fields.items() if value is not None}
    if not fields:
        # Nothing to configure: no config at all spares the SDK a conversion on every call.
        return GenerateRequest(
            model=model or config.model,
            contents=contents,
            config=None,
            estimated_tokens=estimate_tokens(contents, system),
        )
    try:
        generation_config = types.GenerateContentConfig(**fields)
    except pydantic.ValidationError as exc:
        raise invalid_field(exc, "generation config") from None
    return GenerateRequest(
        model=model or config.model,
        contents=contents,
        config=generation_config,
        estimated_tokens=estimate_tokens(contents, system),
    )


def invalid_field(exc: pydantic.ValidationError, whole: str) -> ConfigError:
    """The ``ConfigError`` for the first problem pydantic found (``whole``: the object's name
    when the problem is not in one field)."""
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or whole
    return ConfigError(where, f"{problem['msg']} (got {problem.get('input')!r})")


def thinking_config(level: str) -> types.ThinkingConfig:
    _check_choice("thinking_level", level.lower(), THINKING_LEVELS)
    return types.ThinkingConfig(thinking_level=types.ThinkingLevel(level.upper()))
