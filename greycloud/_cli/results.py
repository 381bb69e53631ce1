"""One output line: the answer to an input line, or why it failed for good.

Every output line has the same keys, so the file loads as a table: ``id``, ``model``, ``text``,
``finish_reason``, ``usage`` (prompt/candidates/thoughts/cached/total tokens), ``attempts``,
``error`` (``{"type", "message"}`` plus ``"code"`` for HTTP errors, or null) and, when the
input line had it, ``metadata``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.genai import errors, types

from ..errors import RetryExhaustedError
from .prompts import LineId, PromptLine

# When a response has no candidate, the prompt itself was blocked.
PROMPT_BLOCKED = "PROMPT_BLOCKED"


@dataclass(frozen=True)
class TokenUsage:
    prompt: int = 0
    candidates: int = 0
    thoughts: int = 0
    cached: int = 0
    total: int = 0

    @classmethod
    def of(cls, usage: types.GenerateContentResponseUsageMetadata | None) -> TokenUsage:
        if usage is None:
            return cls()
        return cls(
            prompt=usage.prompt_token_count or 0,
            candidates=usage.candidates_token_count or 0,
            thoughts=usage.thoughts_token_count or 0,
            cached=usage.cached_content_token_count or 0,
            total=usage.total_token_count or 0,
        )

    def as_json(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt,
            "candidates_tokens": self.candidates,
            "thoughts_tokens": self.thoughts,
            "cached_tokens": self.cached,
            "total_tokens": self.total,
        }


@dataclass(frozen=True)
class LineResult:
    """The outcome of one input line; ``error`` is None when it was answered."""

    id: LineId
    model: str
    attempts: int
    rate_limited: int  # attempts refused with 429
    text: str | None = None
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    error: dict[str, Any] | None = None
    metadata: Any = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": None if self.usage is None else self.usage.as_json(),
            "attempts": self.attempts,
            "error": self.error,
        }
        if self.metadata is not None:
            record["metadata"] = self.metadata
        return record


def answered(
    line: PromptLine,
    model: str,
    response: types.GenerateContentResponse,
    attempts: int,
    rate_limited: int,
) -> LineResult:
    candidates = response.candidates or []
    reason = candidates[0].finish_reason if candidates else None
    return LineResult(
        id=line.id,
        model=model,
        attempts=attempts,
        rate_limited=rate_limited,
        text=response.text or "",
        finish_reason=(
            str(getattr(reason, "value", reason))
            if reason is not None
            else (PROMPT_BLOCKED if not candidates else None)
        ),
        usage=TokenUsage.of(response.usage_metadata),
        metadata=line.metadata,
    )


def failed(
    line: PromptLine, model: str, exc: BaseException, attempts: int, rate_limited: int
) -> LineResult:
    return LineResult(
        id=line.id,
        model=model,
        attempts=attempts,
        rate_limited=rate_limited,
        error=error_json(exc),
        metadata=line.metadata,
    )


def error_json(exc: BaseException) -> dict[str, Any]:
    """``{"type", "message"}`` (and the HTTP ``code``) of the error that ended a line."""
    cause = exc.last_error if isinstance(exc, RetryExhaustedError) else exc
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(cause, errors.APIError):
        error["code"] = cause.code
        if cause is exc:
            error["message"] = f"{cause.code} {cause.status}: {cause.message}"
    return error


def is_rate_limited(exc: BaseException) -> bool:
    cause = exc.last_error if isinstance(exc, RetryExhaustedError) else exc
    return isinstance(cause, errors.APIError) and cause.code == 429
