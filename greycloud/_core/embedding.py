"""Embedding requests, the same way for both clients (pure, no I/O).

The inputs of one ``embed_content`` call are checked, then split into as few requests as the
model's per-request limits allow (``LIMITS``; the README's "Embeddings" section gives the
sources), and the responses are merged back into one, in input order. Every input becomes its
own ``Content``: the SDK merges a list of strings or parts into a single Content for the
multimodal Gemini embedding models, which would return one vector for the whole list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from google.genai import types

from ..errors import ConfigError
from .request import config_error, estimate_tokens, is_content, refuse_bypass

# What Vertex AI and the Gemini API accept (the enum has no Python type in google-genai).
TASK_TYPES = (
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
)
# A part that is not text (an image, a page): counted as a small image, as Gemini counts one.
NON_TEXT_PART_TOKENS = 258


@dataclass(frozen=True)
class EmbeddingLimits:
    """What one request to a model may carry. None: no limit of that kind is known."""

    max_inputs: int
    max_request_tokens: int | None
    max_input_tokens: int
    max_dimensions: int
    text_only: bool = False


_TEXT_MODEL = EmbeddingLimits(250, 20_000, 2_048, 768, text_only=True)
_GEMINI_001 = EmbeddingLimits(100, 20_000, 2_048, 3_072)
_GEMINI_MULTIMODAL = EmbeddingLimits(1, None, 8_192, 3_072)
_SINGLE = EmbeddingLimits(1, None, 2_048, 3_072)

# (model id prefix or fragment, limits on Vertex AI, limits on the Gemini Developer API);
# the first row whose key the model id starts with (or, for "maas", contains) applies.
LIMITS: tuple[tuple[str, EmbeddingLimits, EmbeddingLimits], ...] = (
    ("text-embedding-", _TEXT_MODEL, _TEXT_MODEL),
    ("text-multilingual-embedding-", _TEXT_MODEL, _TEXT_MODEL),
    ("gemini-embedding-001", _GEMINI_001, _GEMINI_001),
    ("gemini-embedding-exp", _GEMINI_001, _GEMINI_001),
    ("gemini-embedding-", _GEMINI_MULTIMODAL, EmbeddingLimits(100, None, 8_192, 3_072)),
    ("maas", _SINGLE, _SINGLE),
)
# Any other model: one input a request is always accepted.
UNKNOWN_MODEL = EmbeddingLimits(1, None, 2_048, 3_072)


def limits_for(model: str, vertexai: bool) -> EmbeddingLimits:
    model_id = model.rsplit("/", 1)[-1]
    for key, on_vertex, on_gemini_api in LIMITS:
        if model_id.startswith(key) or (key == "maas" and key in model_id):
            return on_vertex if vertexai else on_gemini_api
    return UNKNOWN_MODEL


@dataclass(frozen=True)
class EmbedRequest:
    """One request: the inputs ``start`` to ``start + len(contents)`` of the call."""

    start: int
    contents: list[types.Content]
    estimated_tokens: int


@dataclass(frozen=True)
class EmbeddingPlan:
    """An ``embed_content`` call resolved and split: the model, its config and the requests."""

    model: str
    config: types.EmbedContentConfig | None
    requests: list[EmbedRequest]


def plan_embedding(
    contents: Any,
    model: str,
    *,
    vertexai: bool,
    task_type: str | None = None,
    output_dimensionality: int | None = None,
    title: str | None = None,
    auto_truncate: bool | None = None,
    config: types.EmbedContentConfig | Mapping[str, Any] | None = None,
    max_request_tokens: int | None = None,
) -> EmbeddingPlan:
    """Check the call and split it into requests; ``ConfigError`` for anything the service
    would refuse, before anything is sent.

    Keyword arguments win over fields of ``config``. ``max_request_tokens`` lowers the
    model's own per-request token limit (e.g. to the token quota, so a request can start).
    """
    embed_config = resolve_config(
        config,
        task_type=task_type,
        output_dimensionality=output_dimensionality,
        title=title,
        auto_truncate=auto_truncate,
        vertexai=vertexai,
    )
    limits = limits_for(model, vertexai)
    check_dimensions(model, vertexai, embed_config.output_dimensionality if embed_config else None)
    inputs = as_contents(contents)
    truncates = embed_config is None or embed_config.auto_truncate is not False
    estimates = []
    for index, content in enumerate(inputs):
        estimate = input_tokens(content, limits.text_only, index)
        if estimate > limits.max_input_tokens:
            if not truncates:
                raise ConfigError(
                    "contents",
                    f"input {index} is about {estimate} tokens, over the "
                    f"{limits.max_input_tokens} that {model} takes with auto_truncate=False; "
                    "shorten it or leave auto_truncate on",
                )
            estimate = limits.max_input_tokens  # the service embeds only the first part
        estimates.append(estimate)
    request_tokens = limits.max_request_tokens
    if max_request_tokens is not None:
        request_tokens = min(request_tokens or max_request_tokens, max_request_tokens)
    if limits.text_only:
        # The SDK sends each text part of a Content as an instance of its own: one text each.
        inputs = [_one_text(content) for content in inputs]
    requests = list(split(inputs, estimates, limits.max_inputs, request_tokens))
    return EmbeddingPlan(model=model, config=embed_config, requests=requests)


def check_dimensions(model: str, vertexai: bool, dimensions: int | None) -> None:
    """``ConfigError`` unless ``dimensions`` (None: the model's own) fits the model."""
    most = limits_for(model, vertexai).max_dimensions
    if dimensions is not None and not 1 <= dimensions <= most:
        raise ConfigError(
            "output_dimensionality",
            f"{model} makes vectors of 1 to {most} dimensions; got {dimensions}",
        )


def resolve_config(
    config: types.EmbedContentConfig | Mapping[str, Any] | None,
    *,
    task_type: str | None,
    output_dimensionality: int | None,
    title: str | None,
    auto_truncate: bool | None,
    vertexai: bool,
) -> types.EmbedContentConfig | None:
    """The config to send: ``config`` (never changed) with the keyword arguments on top."""
    if config is None:
        fields: dict[str, Any] = {}
    elif isinstance(config, types.EmbedContentConfig):
        fields = config.model_dump(exclude_none=True)
    elif isinstance(config, Mapping):
        fields = dict(config)
    else:
        raise ConfigError(
            "config", f"must be an EmbedContentConfig or a dict, got {type(config).__name__}"
        )
    explicit = {
        "task_type": task_type,
        "output_dimensionality": output_dimensionality,
        "title": title,
        "auto_truncate": auto_truncate,
    }
    fields.update({key: value for key, value in explicit.items() if value is not None})
    fields = {key: value for key, value in fields.items() if value is not None}
    refuse_bypass(fields)
    if not fields:
        return None
    try:
        resolved = types.EmbedContentConfig(**fields)
    except pydantic.ValidationError as exc:
        raise config_error(exc, "config") from None
    if resolved.task_type is not None:
        task = resolved.task_type.upper()
        if task not in TASK_TYPES:
            raise ConfigError("task_type", f"must be one of {', '.join(TASK_TYPES)}; got {task!r}")
        resolved.task_type = task
    if resolved.title is not None and resolved.task_type != "RETRIEVAL_DOCUMENT":
        raise ConfigError(
            "title", "applies only to documents; pass task_type='RETRIEVAL_DOCUMENT' with it"
        )
    if not vertexai:
        # The Gemini API has none of these; the SDK would refuse them with a ValueError.
        for name in ("auto_truncate", "mime_type", "document_ocr", "audio_track_extraction"):
            if getattr(resolved, name) is not None:
                raise ConfigError(name, "is only available on Vertex AI, not the Gemini API")
    return resolved


def as_contents(contents: Any) -> list[types.Content]:
    """Each input as its own ``Content``: a string, part, Content or dict is one input, a
    list is one input per item."""
    items = contents if isinstance(contents, list | tuple) else [contents]
    if not items:
        raise ConfigError("contents", "is empty; pass a text or a list of inputs to embed")
    return [_as_content(item, index) for index, item in enumerate(items)]


def _as_content(item: Any, index: int) -> types.Content:
    try:
        if isinstance(item, str):
            content = types.Content(role="user", parts=[types.Part(text=item)])
        elif isinstance(item, types.Part):
            content = types.Content(role="user", parts=[item])
        elif isinstance(item, types.Content):
            content = item
        elif isinstance(item, Mapping):
            content = (
                types.Content.model_validate(item)
                if is_content(item)
                else types.Content(role="user", parts=[types.Part.model_validate(item)])
            )
        else:
            raise ConfigError(
                "contents",
                f"input {index} is a {type(item).__name__}; pass a string, a Part, a Content "
                "or a dict of one of them",
            )
    except pydantic.ValidationError as exc:
        problem = exc.errors()[0]
        raise ConfigError("contents", f"input {index}: {problem['msg']}") from None
    if not content.parts:
        raise ConfigError("contents", f"input {index} is empty")
    return content


def _one_text(content: types.Content) -> types.Content:
    parts = content.parts or []
    if len(parts) == 1:
        return content
    return types.Content(
        role=content.role, parts=[types.Part(text="\n".join(p.text or "" for p in parts))]
    )


def input_problem(content: types.Content, text_only: bool) -> str | None:
    """Why one input cannot be embedded (e.g. "has no text; ..."), or None."""
    parts = content.parts or []
    texts = [part.text for part in parts if part.text is not None]
    if text_only and len(texts) < len(parts):
        return (
            "holds a part that is not text; this model embeds text only "
            "(use a multimodal Gemini embedding model for images and documents)"
        )
    if len(texts) == len(parts) and not "".join(texts).strip():
        return "has no text; remove it or give it text"
    return None


def input_tokens(content: types.Content, text_only: bool, index: int) -> int:
    """A token estimate for one input; ``ConfigError`` when it holds nothing to embed."""
    problem = input_problem(content, text_only)
    if problem is not None:
        raise ConfigError("contents", f"input {index} {problem}")
    parts = content.parts or []
    texts = [part.text for part in parts if part.text is not None]
    text_estimate = estimate_tokens("".join(texts)) if texts else 0
    return text_estimate + (len(parts) - len(texts)) * NON_TEXT_PART_TOKENS


def split(
    contents: Sequence[types.Content],
    estimates: Sequence[int],
    max_inputs: int,
    max_tokens: int | None,
) -> Iterable[EmbedRequest]:
    """Consecutive runs of inputs, each within both limits (an input larger than
    ``max_tokens`` on its own goes alone)."""
    start = 0
    while start < len(contents):
        end, tokens = start, 0
        while end < len(contents) and end - start < max_inputs:
            fits = max_tokens is None or tokens + estimates[end] <= max_tokens
            if not fits and end > start:
                break
            tokens += estimates[end]
            end += 1
        yield EmbedRequest(start, list(contents[start:end]), max(1, tokens))
        start = end


def counted_tokens(response: types.EmbedContentResponse) -> int | None:
    """The input tokens a response says it used; None when it does not say (the Gemini API)."""
    embeddings = response.embeddings or []
    counts = [e.statistics.token_count if e.statistics else None for e in embeddings]
    if counts and all(count is not None for count in counts):
        return math.ceil(sum(count for count in counts if count is not None))
    usage = response.usage_metadata
    if usage is not None and usage.prompt_token_count is not None:
        return usage.prompt_token_count
    return None


def check_answer(request: EmbedRequest, response: types.EmbedContentResponse) -> None:
    """A response must carry one embedding per input, or the merged order would be wrong."""
    got = len(response.embeddings or [])
    if got != len(request.contents):
        raise ValueError(
            f"the service returned {got} embeddings for {len(request.contents)} inputs "
            f"(inputs {request.start} to {request.start + len(request.contents) - 1})"
        )


def merge(responses: Sequence[types.EmbedContentResponse]) -> types.EmbedContentResponse:
    """One response from the responses of consecutive requests, in their order."""
    embeddings = [e for response in responses for e in response.embeddings or []]
    billable = [
        r.metadata.billable_character_count
        for r in responses
        if r.metadata is not None and r.metadata.billable_character_count is not None
    ]
    truncated = [r.truncated for r in responses if r.truncated is not None]
    prompt = [
        r.usage_metadata.prompt_token_count
        for r in responses
        if r.usage_metadata is not None and r.usage_metadata.prompt_token_count is not None
    ]
    return types.EmbedContentResponse(
        embeddings=embeddings,
        metadata=(
            types.EmbedContentMetadata(billable_character_count=sum(billable)) if billable else None
        ),
        truncated=any(truncated) if truncated else None,
        usage_metadata=(
            types.UsageMetadata(prompt_token_count=sum(prompt), total_token_count=sum(prompt))
            if prompt
            else None
        ),
    )
