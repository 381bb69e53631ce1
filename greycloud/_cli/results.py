"""One output line: the answer to an input line, or why it failed for good.

Every output line has the same keys, so the file loads as a table: ``id``, ``model``, ``text``,
``finish_reason``, ``usage`` (prompt/candidates/thoughts/cached/total tokens, and the prompt
tokens by modality: TEXT, IMAGE, AUDIO, VIDEO, DOCUMENT), ``attempts``,
``error`` (``{"type", "message"}`` plus ``"code"`` for HTTP errors, or null) and, when the
input line had it, ``metadata``. ``batch_line`` gives a batch prediction the same shape (less
``attempts``: the service retries inside a batch job and does not say how often).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.genai import errors, types

from .._core.batch_format import BatchResult
from .._core.cache_rules import model_id
from .._limiter.quota import prompt_details
from ..errors import RetryExhaustedError
from .jsonl_input import LineId
from .prompts import PromptLine

# When a response has no candidate, the prompt itself was blocked.
PROMPT_BLOCKED = "PROMPT_BLOCKED"
# The error type of a batch line the service could not answer (it gives only a status text).
BATCH_LINE_ERROR = "BatchPredictionError"


@dataclass(frozen=True)
class TokenUsage:
    prompt: int = 0
    candidates: int = 0
    thoughts: int = 0
    cached: int = 0
    total: int = 0
    by_modality: tuple[tuple[str, int], ...] = ()  # prompt tokens per modality, as reported

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
            by_modality=tuple((prompt_details(usage) or {}).items()),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "candidates_tokens": self.candidates,
            "thoughts_tokens": self.thoughts,
            "cached_tokens": self.cached,
            "total_tokens": self.total,
            "prompt_tokens_by_modality": dict(self.by_modality),
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


def finish_reason(response: types.GenerateContentResponse) -> str | None:
    candidates = response.candidates or []
    if not candidates:
        return PROMPT_BLOCKED
    reason = candidates[0].finish_reason
    return None if reason is None else str(getattr(reason, "value", reason))


def answered(
    line: PromptLine,
    model: str,
    response: types.GenerateContentResponse,
    attempts: int,
    rate_limited: int,
) -> LineResult:
    return LineResult(
        id=line.id,
        model=model,
        attempts=attempts,
        rate_limited=rate_limited,
        text=response.text or "",
        finish_reason=finish_reason(response),
        usage=TokenUsage.of(response.usage_metadata),
        metadata=line.metadata,
    )


def failed(
    line: PromptLine,
    model: str,
    exc: BaseException,
    attempts: int,
    rate_limited: int,
    kind: type[LineResult] = LineResult,
) -> LineResult:
    """The output line of ``line`` that failed for good (``kind``: the command's line type)."""
    return kind(
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


def batch_line(result: BatchResult, model: str) -> dict[str, Any]:
    """One prediction of a batch job as an output line of ``greycloud run`` (no ``attempts``)."""
    response = result.response
    record: dict[str, Any] = {
        "id": result.request_id,
        "model": model_id(model),
        "text": None,
        "finish_reason": None,
        "usage": None,
        "error": None,
    }
    if response is None:
        record["error"] = {"type": BATCH_LINE_ERROR, "message": result.error or "no response"}
        return record
    record["text"] = response.text or ""
    record["finish_reason"] = finish_reason(response)
    record["usage"] = TokenUsage.of(response.usage_metadata).as_json()
    return record
