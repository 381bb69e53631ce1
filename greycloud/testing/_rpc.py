"""google.rpc error bodies as Google APIs send them, plus the emulator's small JSON helpers.

Every error the emulator returns goes through :func:`error_body`, so the SDK parses it into
``errors.ClientError`` / ``errors.ServerError`` exactly as it parses a real one.
"""

from __future__ import annotations

import json
import math
from typing import Any


class ResourceError(Exception):
    """A request about a resource that cannot be served (becomes a google.rpc error)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The canonical google.rpc status string for each HTTP code the emulator can send.
STATUS_FOR_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_DEFAULT_MESSAGE: dict[str, str] = {
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNAUTHENTICATED": "Request had invalid authentication credentials.",
    "PERMISSION_DENIED": "The caller does not have permission.",
    "NOT_FOUND": "Requested entity was not found.",
    "DEADLINE_EXCEEDED": "The request timed out.",
    "RESOURCE_EXHAUSTED": "Resource exhausted. Please try again later.",
    "INTERNAL": "Internal error encountered.",
    "UNAVAILABLE": "The service is currently unavailable.",
}

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

REQUESTS_QUOTA_ID = "GenerateRequestsPerMinutePerProjectPerModel"
TOKENS_QUOTA_ID = "GenerateContentInputTokensPerMinutePerProjectPerModel"
REQUESTS_QUOTA_METRIC = "aiplatform.googleapis.com/generate_content_requests_per_minute"
TOKENS_QUOTA_METRIC = "aiplatform.googleapis.com/generate_content_input_tokens_per_minute"


def status_for(code: int) -> str:
    """The google.rpc status string for an HTTP code (UNKNOWN for codes Google never sends)."""
    if code in STATUS_FOR_CODE:
        return STATUS_FOR_CODE[code]
    return "INTERNAL" if code >= 500 else "UNKNOWN"


def format_duration(seconds: float) -> str:
    """A protobuf Duration string: ``"12s"`` or ``"12.5s"`` (at most millisecond precision)."""
    text = f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` wants whole seconds; round up so a client that honours it succeeds."""
    return str(max(1, math.ceil(seconds - 1e-9)))


def error_body(
    code: int,
    message: str | None = None,
    *,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"error": {"code", "message", "status", "details"?}}`` as Google APIs return it."""
    status = status or status_for(code)
    error: dict[str, Any] = {
        "code": code,
        "message": message or _DEFAULT_MESSAGE.get(status, "Error."),
        "status": status,
    }
    if details:
        error["details"] = details
    return {"error": error}


def quota_details(
    quota_id: str, retry_delay: float | None, *, metric: str | None = None
) -> list[dict[str, Any]]:
    """The QuotaFailure (and RetryInfo when a delay is known) details of a 429."""
    metric = metric or (TOKENS_QUOTA_METRIC if "Token" in quota_id else REQUESTS_QUOTA_METRIC)
    details: list[dict[str, Any]] = [
        {
            "@type": QUOTA_FAILURE,
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "subject": "project",
                    "description": f"Quota exceeded for {metric} ({quota_id}).",
                }
            ],
        }
    ]
    if retry_delay is not None:
        details.append({"@type": RETRY_INFO, "retryDelay": format_duration(retry_delay)})
    return details


def error_info(reason: str, domain: str = "googleapis.com") -> dict[str, Any]:
    """A google.rpc.ErrorInfo detail (how Google says *why*, e.g. ACCESS_TOKEN_EXPIRED)."""
    return {"@type": ERROR_INFO, "reason": reason, "domain": domain, "metadata": {}}


def expired_token_body() -> dict[str, Any]:
    return error_body(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. ACCESS_TOKEN_EXPIRED: the access "
        "token has expired.",
        details=[error_info("ACCESS_TOKEN_EXPIRED")],
    )


def dumps(value: Any) -> bytes:
    """Compact one-line JSON (SSE events must not contain newlines)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
