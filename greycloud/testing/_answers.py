"""Deterministic answers: token estimates, generated text, and the response JSON around it.

The text for a request is picked from a fixed vocabulary by a hash of the model, contents,
system instruction, generation config and cached content, so the same request always gets the
same answer and a restarted stream reproduces itself exactly. Tokens are estimated as Gemini's
documentation suggests, about four characters each, for input and output alike.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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


_STRUCTURED_PARTS = frozenset(
    {"functionCall", "functionResponse", "function_call", "function_response"}
)


def _text_chars(value: Any) -> int:
    """Characters of every ``text`` field (and function call or reply) inside contents or a
    system instruction."""
    if isinstance(value, dict):
        total = 0
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                total += len(item)
            elif key in _STRUCTURED_PARTS:
                # Function calls and replies count as their JSON, as the model reads them.
                total += len(json.dumps(item, separators=(",", ":")))
            elif isinstance(item, (dict, list)):
                total += _text_chars(item)
        return total
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    return 0


def prompt_tokens(body: dict[str, Any]) -> int:
    """promptTokenCount for a generateContent / countTokens body (cached content excluded)."""
    return estimate_tokens(
        _text_chars(body.get("contents")) + _text_chars(body.get("systemInstruction"))
    )


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
    function_calls: tuple[dict[str, Any], ...] = ()
    """Calls the model makes instead of text (every candidate makes the same)."""

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.candidates_tokens,
            "totalTokenCount": self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens,
            "trafficType": _USAGE_TRAFFIC,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
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
    calls: list[dict[str, Any]] | None = None,
) -> Answer:
    """The deterministic answer to a generateContent body: ``calls`` (function calls) when
    given, else ``scripted`` text, else JSON fitting the response schema when one is sent,
    else generated text."""
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
