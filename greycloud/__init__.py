"""greycloud: rate-limited, retrying sync and async Gemini clients for Vertex AI.

The public names are imported on first use (PEP 562), so that ``import greycloud.cli`` is quick
and the command line can set up its signal handling before google-genai loads. To export a
name: import it below, add it to ``_EXPORTS`` and ``__all__`` (a test checks they agree).
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._async.batch import GreyCloudAsyncBatch
    from ._async.cache import GreyCloudAsyncCache
    from ._async.chats import GreyCloudAsyncChat, GreyCloudAsyncChats
    from ._async.client import GreyCloudAsyncClient
    from ._async.rate_limiter import VertexRateLimiter
    from ._core.batch_format import BatchResult
    from ._core.pricing import CostEstimate, ModelPrice, Pricing
    from ._core.usage import TokenUsage, UsageMeter
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

# Where each public name lives.
_EXPORTS = {
    "GreyCloudAsyncBatch": "._async.batch",
    "GreyCloudAsyncCache": "._async.cache",
    "GreyCloudAsyncChat": "._async.chats",
    "GreyCloudAsyncChats": "._async.chats",
    "GreyCloudAsyncClient": "._async.client",
    "VertexRateLimiter": "._async.rate_limiter",
    "BatchResult": "._core.batch_format",
    "CostEstimate": "._core.pricing",
    "ModelPrice": "._core.pricing",
    "Pricing": "._core.pricing",
    "TokenUsage": "._core.usage",
    "UsageMeter": "._core.usage",
    "LimiterStats": "._limiter.stats",
    "GreyCloudBatch": "._sync.batch",
    "GreyCloudCache": "._sync.cache",
    "GreyCloudChat": "._sync.chats",
    "GreyCloudChats": "._sync.chats",
    "GreyCloudClient": "._sync.client",
    "SyncVertexRateLimiter": "._sync.rate_limiter",
    "GreyCloudConfig": ".config",
    "AuthError": ".errors",
    "BatchInputError": ".errors",
    "BatchJobFailedError": ".errors",
    "BatchResultsNotFoundError": ".errors",
    "BucketNotFoundError": ".errors",
    "CacheTooSmallError": ".errors",
    "ConfigError": ".errors",
    "GreyCloudError": ".errors",
    "LimiterStorageError": ".errors",
    "QuotaExhaustedError": ".errors",
    "RequestTooLargeError": ".errors",
    "RetryExhaustedError": ".errors",
    "StreamInterruptedError": ".errors",
}

# A library never prints: without this, Python's last-resort handler would write greycloud's
# warnings (a 429 slowing the limiter) to the stderr of programs that never set up logging.
logging.getLogger("greycloud").addHandler(logging.NullHandler())

__all__ = [
    "AuthError",
    "BatchInputError",
    "BatchJobFailedError",
    "BatchResult",
    "BatchResultsNotFoundError",
    "BucketNotFoundError",
    "CacheTooSmallError",
    "ConfigError",
    "CostEstimate",
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
    "ModelPrice",
    "Pricing",
    "QuotaExhaustedError",
    "RequestTooLargeError",
    "RetryExhaustedError",
    "StreamInterruptedError",
    "SyncVertexRateLimiter",
    "TokenUsage",
    "UsageMeter",
    "VertexRateLimiter",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
