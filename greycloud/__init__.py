"""greycloud: rate-limited, retrying sync and async Gemini clients for Vertex AI."""

from __future__ import annotations

from ._async.client import GreyCloudAsyncClient
from ._async.rate_limiter import VertexRateLimiter
from ._sync.client import GreyCloudClient
from ._sync.rate_limiter import SyncVertexRateLimiter
from .config import GreyCloudConfig
from .errors import (
    AuthError,
    ConfigError,
    GreyCloudError,
    QuotaExhaustedError,
    RequestTooLargeError,
    RetryExhaustedError,
    StreamInterruptedError,
)

__all__ = [
    "AuthError",
    "ConfigError",
    "GreyCloudAsyncClient",
    "GreyCloudClient",
    "GreyCloudConfig",
    "GreyCloudError",
    "QuotaExhaustedError",
    "RequestTooLargeError",
    "RetryExhaustedError",
    "StreamInterruptedError",
    "SyncVertexRateLimiter",
    "VertexRateLimiter",
]
