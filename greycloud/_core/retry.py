"""What to retry and how long to wait (pure decisions shared by both clients).

Transient: HTTP 408, 429 (unless a per-day quota), 500, 502, 503, 504, and transport failures
(connection refused, reset or closed, read timeout, a stream cut mid-way). Everything else,
400/401/403/404 included, is final. The server's ``RetryInfo.retryDelay`` or ``Retry-After`` is a
floor under the backoff.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from google.genai import errors

from ..errors import RetryExhaustedError

# on_retry(failed_attempt, error, delay_seconds): told before each backoff sleep.
RetryCallback = Callable[[int, BaseException, float], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How a retried call retries each request (``generate_with_retry``, ``embed_content``)."""

    max_retries: int
    base_delay: float
    max_delay: float
    on_retry: RetryCallback | None


TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.TransportError,
    httpx2.StreamError,
    ConnectionError,
    TimeoutError,
)
try:  # the SDK's optional aiohttp transport raises its own types
    import aiohttp

    _TRANSPORT_ERRORS += (aiohttp.ClientError,)
except ImportError:  # pragma: no cover - aiohttp is optional
    pass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


@dataclass(frozen=True)
class Failure:
    """How a failed attempt should be handled."""

    transient: bool
    rate_limited: bool = False  # a 429: the limiter slows down
    per_day: bool = False  # a daily quota: no retry can succeed today
    retry_after: float | None = None  # the server's minimum wait, in seconds
    quota_id: str | None = None


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, errors.APIError):
        if exc.code == 429:
            quota_id = quota_id_of(exc)
            per_day = quota_id is not None and "PerDay" in quota_id
            return Failure(
                transient=not per_day,
                rate_limited=True,
                per_day=per_day,
                retry_after=server_retry_delay(exc),
                quota_id=quota_id,
            )
        if exc.code in TRANSIENT_STATUS:
            return Failure(transient=True, retry_after=server_retry_delay(exc))
        return Failure(transient=False)
    return Failure(transient=isinstance(exc, _TRANSPORT_ERRORS))


def worth_splitting(exc: BaseException) -> bool:
    """Whether a request of many inputs (an embedding batch) that failed for good may get
    further sent one input at a time: yes when one bad input may be the cause, not when the
    service was busy or failing and the retries ran out (more requests would not help)."""
    return not (isinstance(exc, RetryExhaustedError) or classify(exc).transient)


# Cache and batch-job calls that change nothing when sent twice (a create does).
IDEMPOTENT_METHODS = frozenset({"get", "list", "delete", "cancel", "update"})
# Attempts a cache or batch-job call makes before it fails.
MANAGEMENT_ATTEMPTS = 5


def may_resend(method: str, exc: BaseException) -> bool:
    """Whether a failed cache or batch-job call (SDK method ``method``) may be sent again.

    Reads, deletes, cancels and TTL updates may after any transient failure. A create only
    when the service refused it outright (429, 503): after a timeout, another 5xx or a cut
    connection it may have been made, and sending it again could make a second one.
    """
    if not classify(exc).transient:
        return False
    if method in IDEMPOTENT_METHODS:
        return True
    return isinstance(exc, errors.APIError) and exc.code in (429, 503)


def _error_details(exc: errors.APIError) -> list[dict[str, Any]]:
    body = exc.details if isinstance(exc.details, dict) else {}
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details or [] if isinstance(d, dict)]


def is_rejected_api_key(exc: errors.APIError) -> bool:
    """The Google APIs answer a bad API key with 400 and reason ``API_KEY_INVALID``."""
    return any(detail.get("reason") == "API_KEY_INVALID" for detail in _error_details(exc))


def quota_id_of(exc: errors.APIError) -> str | None:
    for detail in _error_details(exc):
        if detail.get("@type", "").endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or []:
                if isinstance(violation, dict) and violation.get("quotaId"):
                    return str(violation["quotaId"])
    return None


def server_retry_delay(exc: errors.APIError) -> float | None:
    """Seconds from ``RetryInfo.retryDelay`` in the body, else from the ``Retry-After`` header."""
    for detail in _error_details(exc):
        if detail.get("@type", "").endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    headers = getattr(exc.response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(
    attempt: int, base_delay: float, max_delay: float, floor: float | None = None
) -> float:
    """Exponential backoff with jitter, capped at ``max_delay``, never below ``floor``.

    The jitter draws between half and all of the step, so concurrent callers spread out.

    ``attempt`` counts failed attempts so far (1 after the first failure).
    """
    ceiling = min(max_delay, base_delay * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, floor or 0.0)
