# DO NOT EDIT: a copy of _async_src/embeddings.py by tools/generate.py.
# Change _async_src/embeddings.py and run `make generate`.
# output-sha256: 01281713833af623
"""Embeddings under the limiter: one ``embed_content`` call sent as many requests.

The call is planned by ``greycloud._core.embedding`` (checked, split by the model's per-request
limits); here each request passes the limiter under the embedding model's own key with its
token estimate, is retried by the client's retry rules, and is reconciled with the token count
the response reports. The requests run concurrently and are merged in input order.

This file is the only hand-written copy; ``make generate`` turns it into the sync twin.
"""

from __future__ import annotations

from typing import Any, Protocol

from google.genai import errors, types

from .. import _telemetry
from .._core.embedding import EmbeddingPlan, EmbedRequest, check_answer, counted_tokens, merge
from .._core.retry import RetryPolicy
from .._core.usage import TokenUsage, UsageMeter
from .._primitives import async_map_bounded
from ..config import GreyCloudConfig
from ..errors import ConfigError, QuotaExhaustedError
from .rate_limiter import Permit, VertexRateLimiter


class EmbeddingClient(Protocol):
    """What embedding needs from the greycloud client (its auth-refreshing SDK call, its
    retry rules, its limiter), named here so that this module needs no import of it."""

    config: GreyCloudConfig
    rate_limiter: VertexRateLimiter
    usage: UsageMeter

    async def _call_with_auth(self, surface: str, method: str, **arguments: Any) -> Any: ...

    async def _report(
        self, model: str, exc: errors.APIError | QuotaExhaustedError, permit: Permit
    ) -> None: ...

    async def _wait_before_retry(
        self,
        exc: Exception,
        attempt: int,
        retry: RetryPolicy,
        *,
        model: str,
        traced: _telemetry.Operation = ...,
    ) -> None: ...


async def embed_planned(
    client: EmbeddingClient,
    plan: EmbeddingPlan,
    retry: RetryPolicy,
    traced: _telemetry.Operation = _telemetry.NO_OPERATION,
) -> types.EmbedContentResponse:
    """Send every request of ``plan`` (as many at once as the model's concurrency limit) and
    merge the answers in order. The first request that fails for good stops the rest. Each
    request's attempts are traced under ``traced``, the call's span."""

    async def send(request: EmbedRequest) -> types.EmbedContentResponse:
        attempt = 0
        while True:
            attempt += 1
            try:
                with traced.attempt(attempt) as step:
                    return await _send_once(client, plan, request, step)
            except Exception as exc:
                await client._wait_before_retry(
                    exc, attempt, retry, model=plan.model, traced=traced
                )

    concurrency = client.config.limits_for(plan.model)["max_concurrency"]
    if not isinstance(concurrency, int):  # only rpm and tpm may be "auto"
        raise ConfigError("max_concurrency", f"must be a whole number, got {concurrency!r}")
    responses = await async_map_bounded(send, plan.requests, concurrency)
    return merge(responses)


async def _send_once(
    client: EmbeddingClient, plan: EmbeddingPlan, request: EmbedRequest, step: _telemetry.Attempt
) -> types.EmbedContentResponse:
    limiter = client.rate_limiter
    async with limiter.limit(plan.model, request.estimated_tokens) as permit:
        step.waited(permit.waited)
        try:
            response: types.EmbedContentResponse = await client._call_with_auth(
                "models",
                "embed_content",
                model=plan.model,
                contents=request.contents,
                config=plan.config,
            )
        except (errors.APIError, QuotaExhaustedError) as exc:  # a per-day 429 is counted too
            await client._report(plan.model, exc, permit)
            raise
        check_answer(request, response)
        actual = counted_tokens(response)
        if actual is not None:
            await permit.reconcile_tokens(actual)
            client.usage.add_usage(plan.model, TokenUsage(responses=1, input=actual))
            step.embedded(actual)
        return response
