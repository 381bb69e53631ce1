"""Embedding answers for the three routes google-genai uses, with deterministic vectors.

Vertex AI: ``:predict`` with ``instances[{content, task_type, title}]`` and ``parameters``
(``text-embedding-*`` models), ``:embedContent`` with one ``content`` and
``embedContentConfig``, ``:batchEmbedContents`` with ``requests[{content,
embedContentConfig}]`` (Gemini embedding models). Gemini API: ``:batchEmbedContents`` with
``requests[{model, content, taskType, title, outputDimensionality}]``.

A vector is seeded from a hash of its text, task type and title, then normalised, so the same
input always gets the same vector and different inputs get different ones. Tokens are counted
as for generation (about four characters a token); an input over the model's limit is cut to
it (``truncated``), or refused with 400 when ``autoTruncate`` is false. The model's
per-request limits (greycloud's own table) are enforced with a 400, as the service does.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

from greycloud._core.embedding import NON_TEXT_PART_TOKENS, EmbeddingLimits, limits_for

from ._answers import estimate_tokens
from ._rpc import ResourceError

EMBEDDING_METHODS = frozenset({"predict", "embedContent", "batchEmbedContents"})


@dataclass(frozen=True)
class _Input:
    text: str
    other_parts: int
    task_type: str | None
    title: str | None
    dimensions: int | None
    auto_truncate: bool


@dataclass(frozen=True)
class EmbeddingAnswer:
    """The response body to send, and the input tokens it counts against the quota."""

    tokens: int
    body: dict[str, Any]


def answer_embedding(
    method: str, model: str, body: dict[str, Any], vertex: bool
) -> EmbeddingAnswer:
    """The answer to an embedding request; ``ResourceError`` (400) when the service would
    refuse it."""
    inputs = _inputs(method, body, vertex)
    limits = limits_for(model, vertex)
    if not inputs:
        raise ResourceError(400, "The request has no content to embed.")
    if len(inputs) > limits.max_inputs:
        raise ResourceError(
            400,
            f"Unable to submit request because it has {len(inputs)} inputs; {model} takes at "
            f"most {limits.max_inputs} per request.",
        )
    embedded = [_embed(item, limits, model) for item in inputs]
    tokens = sum(count for _, count, _ in embedded)
    if limits.max_request_tokens is not None and tokens > limits.max_request_tokens:
        raise ResourceError(
            400,
            f"Unable to submit request because the input token count is {tokens} but "
            f"{model} supports up to {limits.max_request_tokens} per request.",
        )
    return EmbeddingAnswer(tokens, _response(method, vertex, inputs, embedded))


def _inputs(method: str, body: dict[str, Any], vertex: bool) -> list[_Input]:
    if method == "predict":
        parameters = body.get("parameters") or {}
        return [
            _Input(
                text=str(instance.get("content") or ""),
                other_parts=0,
                task_type=instance.get("task_type"),
                title=instance.get("title"),
                dimensions=parameters.get("outputDimensionality"),
                auto_truncate=parameters.get("autoTruncate") is not False,
            )
            for instance in body.get("instances") or []
        ]
    if method == "embedContent":
        return [_content_input(body)]
    return [_content_input(request) for request in body.get("requests") or []]


def _content_input(request: dict[str, Any]) -> _Input:
    """One ``content`` and its settings (nested in ``embedContentConfig`` on Vertex AI,
    beside it on the Gemini API)."""
    config = request.get("embedContentConfig") or request
    parts = (request.get("content") or {}).get("parts") or []
    texts = [part["text"] for part in parts if isinstance(part.get("text"), str)]
    return _Input(
        text="".join(texts),
        other_parts=len(parts) - len(texts),
        task_type=config.get("taskType"),
        title=config.get("title"),
        dimensions=config.get("outputDimensionality"),
        auto_truncate=config.get("autoTruncate") is not False,
    )


def _embed(item: _Input, limits: EmbeddingLimits, model: str) -> tuple[list[float], int, bool]:
    """(vector, tokens, truncated) for one input."""
    if not item.text.strip() and not item.other_parts:
        raise ResourceError(400, "The input content is empty.")
    dimensions = item.dimensions if item.dimensions is not None else limits.max_dimensions
    if not isinstance(dimensions, int) or not 1 <= dimensions <= limits.max_dimensions:
        raise ResourceError(
            400, f"outputDimensionality must be between 1 and {limits.max_dimensions}."
        )
    tokens = (estimate_tokens(len(item.text)) if item.text else 0) + (
        item.other_parts * NON_TEXT_PART_TOKENS
    )
    truncated = tokens > limits.max_input_tokens
    if truncated:
        if not item.auto_truncate:
            raise ResourceError(
                400,
                f"Input content has {tokens} tokens, more than the {limits.max_input_tokens} "
                f"that {model} accepts. Shorten it or enable autoTruncate.",
            )
        tokens = limits.max_input_tokens
    return _vector(item, dimensions), tokens, truncated


def _vector(item: _Input, dimensions: int) -> list[float]:
    seed = hashlib.blake2b(
        "\x00".join((item.text, item.task_type or "", item.title or "")).encode(), digest_size=8
    ).digest()
    rng = random.Random(int.from_bytes(seed, "big"))
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [round(value / norm, 7) for value in raw]


def _response(
    method: str,
    vertex: bool,
    inputs: list[_Input],
    embedded: list[tuple[list[float], int, bool]],
) -> dict[str, Any]:
    tokens = sum(count for _, count, _ in embedded)
    usage = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    if method == "predict":
        return {
            "predictions": [
                {
                    "embeddings": {
                        "values": values,
                        # Vertex AI spells these two in snake_case.
                        "statistics": {"truncated": truncated, "token_count": count},
                    }
                }
                for values, count, truncated in embedded
            ],
            "metadata": {"billableCharacterCount": sum(len(item.text) for item in inputs)},
        }
    if method == "embedContent":
        values, _, truncated = embedded[0]
        return {"embedding": {"values": values}, "usageMetadata": usage, "truncated": truncated}
    if not vertex:  # the Gemini API reports no token counts for embeddings
        return {"embeddings": [{"values": values} for values, _, _ in embedded]}
    return {
        "embeddings": [
            {"values": values, "statistics": {"truncated": truncated, "token_count": count}}
            for values, count, truncated in embedded
        ],
        "usageMetadata": usage,
    }
