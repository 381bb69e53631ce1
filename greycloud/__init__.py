"""greycloud: rate-limited, retrying sync and async Gemini clients for Vertex AI."""

from __future__ import annotations

from ._async.batch import GreyCloudAsyncBatch
from ._async.cache import GreyCloudAsyncCache
from ._async.chats import GreyCloudAsyncChat, GreyCloudAsyncChats
from ._async.client import GreyCloudAsyncClient
from ._async.rate_limiter import VertexRateLimiter
from ._core.batch_format import BatchResult
from ._limiter.stats import LimiterStats
from ._sync.batch import GreyCloudBatch
from ._sync.cache import GreyCloudCache
from ._sync.chats import GreyCloudChat, GreyCloudChats
from ._sync.client import GreyCloudClient
from ._sync.rate_limiter import SyncVertexRateLimiter
from .config import GreyCloudConfig
from .errors import (
    AuthError,
    BatchInputError,
    BatchJobFailedError,
    BatchResultsNotFoundError,
    BucketNotFoundError,
    CacheTooSmallError,
    ConfigError,
    GreyCloudError,
    LimiterStorageError,
    QuotaExhaustedError,
    RequestTooLargeError,
    RetryExhaustedError,
    StreamInterruptedError,
)

__all__ = [
    "AuthError",
    "BatchInputError",
    "BatchJobFailedError",
    "BatchResult",
    "BatchResultsNotFoundError",
    "BucketNotFoundError",
    "CacheTooSmallError",
    "ConfigError",
    "GreyCloudAsyncBatch",
    "GreyCloudAsyncCache",
    "GreyCloudAsyncChat",
    "GreyCloudAsyncChats",
    "GreyCloudAsyncClient",
    "GreyCloudBatch",
    "GreyCloudCache",
    "GreyCloudChat",
    "GreyCloudChats",
    "GreyCloudClient",
    "GreyCloudConfig",
    "GreyCloudError",
    "LimiterStats",
    "LimiterStorageError",
    "QuotaExhaustedError",
    "RequestTooLargeError",
    "RetryExhaustedError",
    "StreamInterruptedError",
    "SyncVertexRateLimiter",
    "VertexRateLimiter",
]
