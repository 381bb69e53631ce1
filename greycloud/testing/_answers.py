"""Deterministic answers: token estimates, generated text, and the response JSON around it.

The text for a request is picked from a fixed vocabulary by a hash of the model, contents,
system instruction, generation config and cached content, so the same request always gets the
same answer and a restarted stream reproduces itself exactly. Text tokens are about four
characters each, for input and output alike. Media in the prompt are counted like the service
counts them, by the published rules in ``greycloud._core.token_rules`` (the one table greycloud's
own estimate uses): images by their real dimensions, PDFs by their pages, audio and video by the
duration in their headers. Media the emulator cannot read (``fileData`` URIs, unknown formats)
get a fixed, URI-dependent size that no client can know without asking ``countTokens``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._core.token_estimate import UnsizedMedia, estimate_prompt
from .._core.token_rules import TEXT, model_family, unsized_prior
from ._structured import json_text, response_schema

# fmt: off
_VOCABULARY = (
    "the", "quick", "model", "answers", "every", "question", "with", "calm", "and", "measured",
    "words", "about", "clouds", "rivers", "mountains", "light", "signal", "quota", "token",
    "stream", "window", "region", "project", "latency", "batch", "cache", "prompt", "reply",
    "system", "engine", "vertex", "gemini", "local", "test", "offline", "steady", "careful",
    "honest", "simple", "clear", "bright", "quiet", "north", "south", "east", "west",
    "morning", "evening", "garden", "harbor", "bridge", "lantern", "compass", "meadow",
    "orchard", "valley", "summit", "canyon", "island", "forest", "river",
)
# fmt: on

_MIN_ANSWER_TOKENS = 20
_MAX_ANSWER_TOKENS = 60
_CHUNK_CHARS = 24  # stream events carry roughly this much text each

_USAGE_TRAFFIC = "ON_DEMAND"


def estimate_tokens(chars: int) -> int:
    """About four characters a token, never zero."""
    return max(1, (chars + 3) // 4)


def prompt_tokens(body: dict[str, Any], model: str = "") -> int:
    """promptTokenCount for a generateContent / countTokens body (cached content excluded)."""
    return sum(prompt_details(body, model).values())


def prompt_details(body: dict[str, Any], model: str = "") -> dict[str, int]:
    """The prompt's tokens by modality (promptTokensDetails), cached content excluded."""
    config = body.get("generationConfig")
    resolution = _field(config, "mediaResolution", "media_resolution") if config else None
    estimate = estimate_prompt(
        body.get("contents"),
        body.get("systemInstruction"),
        model=model,
        media_resolution=resolution,
    )
    details = {modality: tokens for modality, tokens in estimate.tokens.items() if tokens}
    for media in estimate.unsized:
        details[media.modality] = details.get(media.modality, 0) + _unreadable_tokens(model, media)
    if not details:
        details[TEXT] = estimate_tokens(0)
    return details


def _unreadable_tokens(model: str, media: UnsizedMedia) -> int:
    """A size for media the emulator cannot read: the table's first guess times a factor
    between 0.5 and 2 that depends only on the URI and MIME type (stable across calls)."""
    prior = unsized_prior(model_family(model), media.modality, media.resolution)
    key = f"{media.uri}|{media.mime_type}".encode()
    share = int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") / 2**32
    return max(1, round(prior * (0.5 + 1.5 * share)))


def _field(message: dict[str, Any], camel: str, snake: str) -> Any:
    # Proto JSON accepts both spellings, and the SDK sends thinkingConfig in snake_case.
    value = message.get(camel)
    return message.get(snake) if value is None else value


def thinking_requested(generation_config: dict[str, Any]) -> tuple[bool, int | None]:
    """Whether thinkingConfig asks for thinking, and its token budget when it gives one."""
    thinking = _field(generation_config, "thinkingConfig", "thinking_config")
    if not isinstance(thinking, dict):
        return False, None
    budget = _field(thinking, "thinkingBudget", "thinking_budget")
    if isinstance(budget, int):
        return budget != 0, (budget if budget > 0 else None)
    level = _field(thinking, "thinkingLevel", "thinking_level")
    return bool(level or _field(thinking, "includeThoughts", "include_thoughts")), None


@dataclass(frozen=True)
class Answer:
    """What the model "said": one text per candidate, and the usage to report."""

    texts: tuple[str, ...]
    finish_reasons: tuple[str, ...]
    prompt_tokens: int
    candidates_tokens: int
    thoughts_tokens: int
    cached_tokens: int
    prompt_details: tuple[tuple[str, int], ...] = ()  # by modality; () when all text

    def prompt_tokens_details(self) -> list[dict[str, Any]]:
        """promptTokensDetails: the prompt by modality, cached content counted as text."""
        details = dict(self.prompt_details) or {TEXT: self.prompt_tokens - self.cached_tokens}
        if self.cached_tokens:
            details[TEXT] = details.get(TEXT, 0) + self.cached_tokens
        return [{"modality": modality, "tokenCount": count} for modality, count in details.items()]

    function_calls: tuple[dict[str, Any], ...] = ()
    """Calls the model makes instead of text (every candidate makes the same)."""

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.candidates_tokens,
            "totalTokenCount": self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens,
            "trafficType": _USAGE_TRAFFIC,
            "promptTokensDetails": self.prompt_tokens_details(),
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": self.candidates_tokens}],
        }
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.cached_tokens}]
        return usage


def request_digest(model: str, body: dict[str, Any]) -> bytes:
    """A stable hash of what decides the answer (not of ids, safety settings or tools)."""
    key = [
        model,
        body.get("contents"),
        # An empty config or instruction asks for nothing: same answer as none at all.
        body.get("systemInstruction") or None,
        body.get("generationConfig") or None,
        body.get("cachedContent") or None,
    ]
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canonical.encode(), digest_size=16).digest()


def _generated_text(seed: int) -> str:
    rng = random.Random(seed)
    target_chars = 4 * rng.randint(_MIN_ANSWER_TOKENS, _MAX_ANSWER_TOKENS)
    words: list[str] = []
    length = -1
    since_stop = 0
    while length < target_chars - 1:
        word = rng.choice(_VOCABULARY)
        if since_stop == 0:
            word = word.capitalize()
        since_stop += 1
        if since_stop >= 6 and rng.random() < 0.25:
            word += "."
            since_stop = 0
        words.append(word)
        length += len(word) + 1
    text = " ".join(words)
    return text if text.endswith(".") else text + "."


def make_answer(
    model: str,
    body: dict[str, Any],
    *,
    prompt: int,
    cached: int,
    scripted: str | None,
    details: Mapping[str, int] | None = None,
    calls: list[dict[str, Any]] | None = None,
) -> Answer:
    """The deterministic answer to a generateContent body: ``calls`` (function calls) when
    given, else ``scripted`` text, else JSON fitting the response schema when one is sent,
    else generated text. ``details``: the prompt's tokens by modality, when not all text."""
    config = body.get("generationConfig")
    if not isinstance(config, dict):
        config = {}
    count = _field(config, "candidateCount", "candidate_count")
    count = count if isinstance(count, int) and count > 0 else 1
    max_tokens = _field(config, "maxOutputTokens", "max_output_tokens")
    limit = max_tokens * 4 if isinstance(max_tokens, int) and max_tokens > 0 else None

    base = int.from_bytes(request_digest(model, body), "big")
    schema = response_schema(config)
    if calls:
        raw = [""] * count
    elif scripted is not None:
        raw = [scripted] * count
    elif schema is not None:
        raw = [json_text(schema[0], base + index) for index in range(count)]
    else:
        raw = [_generated_text(base + index) for index in range(count)]

    texts: list[str] = []
    reasons: list[str] = []
    output_tokens = 0
    for text in raw:
        if limit is not None and len(text) > limit:
            text, reason = text[:limit], "MAX_TOKENS"
        else:
            reason = "STOP"
        texts.append(text)
        reasons.append(reason)
        output_tokens += estimate_tokens(len(text)) if text else 0
    if calls:
        output_tokens = count * estimate_tokens(len(json.dumps(calls)))

    thinking, budget = thinking_requested(config)
    thoughts = 0
    if thinking:
        thoughts = 3 * estimate_tokens(len(raw[0])) + 17
        if budget is not None:
            thoughts = min(thoughts, budget)
    return Answer(
        texts=tuple(texts),
        finish_reasons=tuple(reasons),
        prompt_tokens=prompt + cached,
        candidates_tokens=output_tokens,
        thoughts_tokens=thoughts,
        cached_tokens=cached,
        prompt_details=tuple((details or {}).items()),
        function_calls=tuple(calls or ()),
    )


def _candidate(
    text: str, index: int, many: bool, finish: str | None, calls: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    parts = [{"functionCall": call} for call in calls] if calls else [{"text": text}]
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish is not None:
        candidate["finishReason"] = finish
        candidate["avgLogprobs"] = -0.25
    if many:
        candidate["index"] = index
    return candidate


def response_json(answer: Answer, envelope: dict[str, str]) -> dict[str, Any]:
    """The whole generateContent response (``envelope``: modelVersion, responseId, createTime)."""
    many = len(answer.texts) > 1
    return {
        "candidates": [
            _candidate(text, index, many, answer.finish_reasons[index], answer.function_calls)
            for index, text in enumerate(answer.texts)
        ],
        "usageMetadata": answer.usage(),
        **envelope,
    }


def split_text(text: str, size: int = _CHUNK_CHARS) -> list[str]:
    """Pieces of about ``size`` characters, cut after a space; they join back to ``text``."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            space = text.find(" ", end)
            end = len(text) if space < 0 else space + 1
        pieces.append(text[start:end])
        start = end
    return pieces or [""]


def stream_events(answer: Answer, envelope: dict[str, str]) -> Iterator[dict[str, Any]]:
    """streamGenerateContent chunks: text spread over events, the last one with finishReason
    and the full usageMetadata (earlier ones carry only the prompt count, as Vertex does)."""
    many = len(answer.texts) > 1
    if answer.function_calls:  # calls come whole, in one event
        yield response_json(answer, envelope)
        return
    split = [split_text(text) for text in answer.texts]
    events = max(len(pieces) for pieces in split)
    partial_usage = {
        "promptTokenCount": answer.prompt_tokens,
        "totalTokenCount": answer.prompt_tokens,
        "trafficType": _USAGE_TRAFFIC,
    }
    for number in range(events):
        last = number == events - 1
        candidates = [
            _candidate(
                pieces[number] if number < len(pieces) else "",
                index,
                many,
                answer.finish_reasons[index] if last else None,
            )
            for index, pieces in enumerate(split)
            if number < len(pieces) or last
        ]
        yield {
            "candidates": candidates,
            "usageMetadata": answer.usage() if last else partial_usage,
            **envelope,
        }
