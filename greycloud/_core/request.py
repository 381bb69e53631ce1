"""Building a generation request, the same way for both clients (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from google.genai import types

from .._limiter.calibration import TokenEstimate
from ..config import (
    THINKING_LEVELS,
    GreyCloudConfig,
    _check_choice,
    check_generation_values,
    check_safety_settings,
)
from ..errors import ConfigError
from . import function_calling
from .function_calling import FunctionLoop
from .token_estimate import PromptEstimate, estimate_prompt
from .token_rules import model_family, unsized_prior

Contents = Any  # what google-genai accepts: str, Part, Content, dicts, or a list of these
SafetySettings = Sequence[types.SafetySetting | Mapping[str, Any]]
# tools= as google-genai takes it: Tool objects or dicts, and Python functions to call.
Tools = Sequence[types.Tool | types.ToolDict | Callable[..., Any]]
# config= as google-genai takes it.
GenerateConfig = types.GenerateContentConfig | Mapping[str, Any]


@dataclass(frozen=True)
class GenerateRequest:
    """One generation call, resolved against the config: what is sent, and its token estimate."""

    model: str
    contents: Contents
    config: types.GenerateContentConfig | None  # None: nothing to configure
    estimate: PromptEstimate
    function_loop: FunctionLoop | None = None
    """The functions greycloud runs for the model, hop by hop (None: no Python functions)."""
    caller_tools: bool = False
    """Whether the caller gave tools (grounding then leaves the request alone)."""
    priced: TokenEstimate | None = None
    """The estimate with media of unknown size priced too (None: there are none, or not yet)."""

    @property
    def booked_tokens(self) -> TokenEstimate:
        """What the limiter books for this request, by modality."""
        if self.priced is not None:
            return self.priced
        return TokenEstimate(self.estimate.tokens)

    def next_hop(self, contents: list[types.Content]) -> GenerateRequest:
        """The same request with the conversation so far (function replies included).

        The history repeats the first turn's media, so their prices carry over.
        """
        system = self.config.system_instruction if self.config is not None else None
        estimate = prompt_estimate(contents, system, self.model, self.config)
        priced = self.priced
        if priced is not None:
            priced = TokenEstimate(estimate.tokens, priced.fixed, priced.averaged)
        return dataclasses.replace(self, contents=contents, estimate=estimate, priced=priced)


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


def estimate_tokens(contents: Any, system_instruction: Any = None, model: str = "") -> int:
    """A quick prompt-token estimate (text, and media sized from their bytes), at least one."""
    return prompt_estimate(contents, system_instruction, model, None).total


def prompt_estimate(
    contents: Any, system_instruction: Any, model: str, config: types.GenerateContentConfig | None
) -> PromptEstimate:
    """The estimate by modality of one request, with the config's media resolution."""
    resolution = config.media_resolution if config is not None else None
    return estimate_prompt(contents, system_instruction, model=model, media_resolution=resolution)


def priced_estimate(
    request: GenerateRequest,
    counts: Sequence[int | None],
    average: Callable[[str], float | None],
) -> TokenEstimate:
    """The request's estimate with each media part of unknown size priced.

    ``counts`` holds the service's count of each unsized part (None: not counted); the others
    take ``average(modality)``, the learned tokens per part, or before anything was learned the
    table's first guess.
    """
    fixed: dict[str, int] = {}
    averaged: dict[str, int] = {}
    family = model_family(request.model)
    for media, counted in zip(request.estimate.unsized, counts, strict=True):
        modality = media.modality
        if counted is None:
            learned = average(modality)
            prior = unsized_prior(family, modality, media.resolution)
            counted = prior if learned is None else math.ceil(learned)
            averaged[modality] = averaged.get(modality, 0) + 1
        fixed[modality] = fixed.get(modality, 0) + counted
    return TokenEstimate(request.estimate.tokens, fixed, averaged)


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
    tools: Tools | None = None,
    thinking_level: str | None = None,
    cached_content: str | None = None,
    generate_config: GenerateConfig | None = None,
    extra: Mapping[str, Any] | None = None,
) -> GenerateRequest:
    """Resolve call arguments against the config.

    Precedence, field by field: a keyword argument (``temperature=``, or any other
    GenerateContentConfig field passed as a keyword) beats the same field of
    ``generate_config`` (the ``config=`` a google-genai user passes), which beats the
    ``GreyCloudConfig`` default. ``generate_config`` is read, never changed. Safety settings:
    None sends nothing, ``[]`` sends an empty list. The Vertex AI Search retrieval tool is
    added when the config asks for tool grounding and no tools are given either way.
    """
    if contents is None or (isinstance(contents, (str, list)) and not contents):
        raise ConfigError("contents", "is empty; pass a prompt string or a list of contents")
    defaults: dict[str, Any] = {
        "system_instruction": config.system_instruction,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_output_tokens": config.max_output_tokens,
        "seed": config.seed,
        "safety_settings": (
            None if config.safety_settings is None else safety_settings_list(config.safety_settings)
        ),
        "thinking_config": (
            None if config.thinking_level is None else thinking_config(config.thinking_level)
        ),
    }
    explicit: dict[str, Any] = {
        "system_instruction": system_instruction,
        "temperature": temperature,
        "top_p": top_p,
        "max_output_tokens": max_output_tokens,
        "safety_settings": None
        if safety_settings is None
        else safety_settings_list(safety_settings),
        "tools": None if tools is None else list(tools),
        "thinking_config": None if thinking_level is None else thinking_config(thinking_level),
        "cached_content": cached_content,
        **(extra or {}),
    }
    fields = {key: value for key, value in defaults.items() if value is not None}
    fields.update(given_fields(generate_config))
    fields.update({key: value for key, value in explicit.items() if value is not None})
    # The call's values get the config's checks, however they were given (keyword or config=).
    check_generation_values(
        temperature=fields.get("temperature"),
        top_p=fields.get("top_p"),
        max_output_tokens=fields.get("max_output_tokens"),
    )
    caller_tools = "tools" in fields
    if not caller_tools and config.use_vertex_ai_search and config.grounding_mode == "tool":
        assert config.vertex_ai_search_datastore is not None  # checked by the config
        fields["tools"] = [vertex_search_tool(config.vertex_ai_search_datastore)]
    refuse_bypass(fields)

    model_name = model or config.model
    system = fields.get("system_instruction")
    if not fields:
        # Nothing to configure: no config at all spares the SDK a conversion on every call.
        estimate = prompt_estimate(contents, system, model_name, None)
        return GenerateRequest(model_name, contents, None, estimate)
    try:
        generation_config = types.GenerateContentConfig(**fields)
    except pydantic.ValidationError as exc:
        raise config_error(exc, "generation config") from None
    loop = function_calling.plan(generation_config)
    if function_calling.functions_in(generation_config.tools):
        # Never Google's loop: greycloud runs the functions itself, one limited call a hop.
        generation_config = function_calling.without_sdk_loop(generation_config)
    estimate = prompt_estimate(contents, system, model_name, generation_config)
    return GenerateRequest(model_name, contents, generation_config, estimate, loop, caller_tools)


def given_fields(generate_config: GenerateConfig | None) -> dict[str, Any]:
    """The fields the caller set in a ``config=`` (a GenerateContentConfig or its dict)."""
    if generate_config is None:
        return {}
    if isinstance(generate_config, types.GenerateContentConfig):
        checked = generate_config
    elif isinstance(generate_config, Mapping):
        try:
            checked = types.GenerateContentConfig.model_validate(generate_config)
        except pydantic.ValidationError as exc:
            raise config_error(exc, "config") from None
    else:
        raise ConfigError(
            "config",
            "must be a google.genai.types.GenerateContentConfig or a dict, "
            f"got {type(generate_config).__name__}",
        )
    return {
        name: getattr(checked, name)
        for name in checked.model_fields_set
        if getattr(checked, name) is not None
    }


def refuse_bypass(fields: Mapping[str, Any]) -> None:
    """Refuse the settings that would take a guarantee away (the rest are honoured)."""
    http_options = fields.get("http_options")
    if http_options is None:
        return
    retry_options = (
        http_options.get("retry_options")
        if isinstance(http_options, Mapping)
        else getattr(http_options, "retry_options", None)
    )
    if retry_options is not None:
        raise ConfigError(
            "http_options.retry_options",
            "greycloud retries by itself so that every attempt passes the limiter; SDK retries "
            "would send requests the limiter never sees. Leave retry_options out and use "
            "generate_with_retry's max_retries, base_delay and max_delay",
        )


def config_error(exc: pydantic.ValidationError, what: str) -> ConfigError:
    """The ``ConfigError`` for the first problem pydantic found (``what``: the object's name
    when the problem is not in one field)."""
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or what
    return ConfigError(where, f"{problem['msg']} (got {problem.get('input')!r})")


def thinking_config(level: str) -> types.ThinkingConfig:
    _check_choice("thinking_level", level.lower(), THINKING_LEVELS)
    return types.ThinkingConfig(thinking_level=types.ThinkingLevel(level.upper()))
