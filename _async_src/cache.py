"""Context caches: create, list, update, delete, and generate against one under the limiter.

This file is the only hand-written copy of the cache client. ``make generate`` turns it into
the sync one; keep comments and docstrings true for both.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.genai import types

from .. import auth
from .._core.cache_rules import guess_mime_type, min_cache_tokens, model_id
from .._core.request import Contents
from .._gcs import GCS_SCHEME
from .._primitives import AsyncStream, async_close_iterator
from ..config import GreyCloudConfig
from ..errors import CacheTooSmallError, ConfigError
from .client import GreyCloudAsyncClient, StreamItem, _ClientBacked
from .rate_limiter import VertexRateLimiter

logger = logging.getLogger("greycloud.cache")

DEFAULT_TTL_SECONDS = 3600


def _ttl(ttl_seconds: float) -> str:
    if isinstance(ttl_seconds, bool) or not ttl_seconds > 0:
        raise ConfigError("ttl_seconds", f"must be a positive number of seconds, got {ttl_seconds}")
    return f"{ttl_seconds:g}s"


def _expire_time(value: datetime.datetime | str) -> datetime.datetime:
    if isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                "expire_time",
                f"{value!r} is not an RFC 3339 time; pass e.g. '2030-01-01T12:00:00Z' or an "
                "aware datetime",
            ) from None
    else:
        moment = value
    if moment.tzinfo is None:
        raise ConfigError(
            "expire_time",
            "needs a time zone, e.g. datetime.now(timezone.utc) + timedelta(hours=2)",
        )
    return moment


class GreyCloudAsyncCache(_ClientBacked):
    """Context caches on Vertex AI (or the Gemini Developer API), sharing a client's limits.

    Pass ``client`` (a greycloud client) to share its SDK connection, credentials and limiter;
    otherwise one is built from ``config``, ``credentials`` and ``rate_limiter`` exactly as the
    client builds it, and closed with this object. Generation against a cache goes through the
    client's ``generate_with_retry``: the same limiter, retries and auth refresh.
    """

    def __init__(
        self,
        config: GreyCloudConfig | None = None,
        *,
        credentials: auth.Credentials | None = None,
        rate_limiter: VertexRateLimiter | None = None,
        client: GreyCloudAsyncClient | None = None,
    ) -> None:
        super().__init__(config, credentials, rate_limiter, client)
        self._models: dict[str, str] = {}  # cache name -> model, for caches seen here

    # -- creating ---------------------------------------------------------------------------

    async def create_cache(
        self,
        contents: Contents,
        model: str | None = None,
        display_name: str | None = None,
        system_instruction: Any = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        tools: list[types.Tool] | None = None,
    ) -> types.CachedContent:
        """Cache ``contents`` (a string, Content objects, dicts or parts) for ``ttl_seconds``.

        The size is counted first (the service's countTokens, through the limiter) and a cache
        below the model's minimum raises ``CacheTooSmallError`` before anything is created.
        """
        model = model or self.config.model
        ttl = _ttl(ttl_seconds)
        if contents is None or (isinstance(contents, (str, list)) and not contents):
            raise ConfigError("contents", "is empty; pass the text or contents to cache")
        minimum = min_cache_tokens(model, vertexai=self.config.vertexai)
        tokens = await self._client.count_tokens(
            contents, system_instruction=system_instruction, model=model
        )
        if tokens < minimum:
            raise CacheTooSmallError(model, tokens, minimum)
        cache: types.CachedContent = await self._client._call_with_auth(
            "caches",
            "create",
            model=model,
            config=types.CreateCachedContentConfig(
                contents=contents,
                system_instruction=system_instruction,
                display_name=display_name,
                ttl=ttl,
                tools=tools,
            ),
        )
        if cache.name:
            self._models[cache.name] = model
        logger.info("created cache %s (%d tokens, model %s)", cache.name, tokens, model)
        return cache

    async def create_cache_from_text(
        self,
        text: str,
        model: str | None = None,
        display_name: str | None = None,
        system_instruction: Any = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        tools: list[types.Tool] | None = None,
    ) -> types.CachedContent:
        """Cache one text as a user turn (see ``create_cache``)."""
        if not text:
            raise ConfigError("text", "is empty; pass the text to cache")
        contents = [types.Content(role="user", parts=[types.Part(text=text)])]
        return await self.create_cache(
            contents, model, display_name, system_instruction, ttl_seconds, tools
        )

    async def create_cache_from_files(
        self,
        file_uris: Sequence[str],
        mime_types: Sequence[str] | None = None,
        model: str | None = None,
        display_name: str | None = None,
        system_instruction: Any = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        tools: list[types.Tool] | None = None,
    ) -> types.CachedContent:
        """Cache files in Cloud Storage (``gs://`` URIs) as one user turn.

        Each file's MIME type is ``mime_types[i]`` or, when not given, guessed from its
        extension; a file whose type cannot be guessed raises ``ConfigError`` before any call.
        """
        if isinstance(file_uris, str) or not file_uris:
            raise ConfigError("file_uris", "pass a non-empty list of gs:// URIs")
        if mime_types is not None and len(mime_types) != len(file_uris):
            raise ConfigError(
                "mime_types",
                f"has {len(mime_types)} entries for {len(file_uris)} files; give one per file",
            )
        parts = []
        for index, uri in enumerate(file_uris):
            if not uri.startswith(GCS_SCHEME):
                raise ConfigError("file_uris", f"{uri!r} is not a gs:// URI")
            mime_type = mime_types[index] if mime_types is not None else guess_mime_type(uri)
            if not mime_type:
                raise ConfigError(
                    "mime_types",
                    f"cannot tell the MIME type of {uri} from its name; "
                    "pass mime_types=[...] with one type per file",
                )
            parts.append(types.Part.from_uri(file_uri=uri, mime_type=mime_type))
        contents = [types.Content(role="user", parts=parts)]
        return await self.create_cache(
            contents, model, display_name, system_instruction, ttl_seconds, tools
        )

    # -- managing ---------------------------------------------------------------------------

    async def list_caches(self) -> list[types.CachedContent]:
        """Every live cache of the project and location (all pages)."""
        pager = await self._client._call_with_auth("caches", "list")
        return [cache async for cache in pager]

    async def get_cache(self, name: str) -> types.CachedContent:
        cache: types.CachedContent = await self._client._call_with_auth("caches", "get", name=name)
        if cache.name and cache.model:
            self._models[cache.name] = model_id(cache.model)
        return cache

    async def update_cache_ttl(
        self,
        name: str,
        ttl_seconds: float | None = None,
        expire_time: datetime.datetime | str | None = None,
    ) -> types.CachedContent:
        """Give a cache a new lifetime: ``ttl_seconds`` from now, or an ``expire_time``
        (an aware datetime or an RFC 3339 string). Exactly one of the two."""
        if (ttl_seconds is None) == (expire_time is None):
            raise ConfigError("ttl_seconds", "pass exactly one of ttl_seconds and expire_time")
        if expire_time is not None:
            config = types.UpdateCachedContentConfig(expire_time=_expire_time(expire_time))
        else:
            assert ttl_seconds is not None
            config = types.UpdateCachedContentConfig(ttl=_ttl(ttl_seconds))
        cache: types.CachedContent = await self._client._call_with_auth(
            "caches", "update", name=name, config=config
        )
        return cache

    async def delete_cache(self, name: str) -> None:
        await self._client._call_with_auth("caches", "delete", name=name)
        self._models.pop(name, None)

    async def delete_all_caches(self, display_name_filter: str | None = None) -> int:
        """Delete every cache (or those whose display name contains ``display_name_filter``);
        returns how many were deleted."""
        deleted = 0
        for cache in await self.list_caches():
            if not cache.name:
                continue
            if display_name_filter is not None and display_name_filter not in (
                cache.display_name or ""
            ):
                continue
            await self.delete_cache(cache.name)
            deleted += 1
        return deleted

    async def get_cache_info(self, cache: types.CachedContent | str) -> dict[str, Any]:
        """A plain summary of a cache (fetched first when given by name): name, display_name,
        model, create/update/expire times, ``ttl_remaining_seconds`` and ``total_token_count``."""
        if isinstance(cache, str):
            cache = await self.get_cache(cache)
        remaining = None
        if cache.expire_time is not None:
            now = datetime.datetime.now(datetime.UTC)
            remaining = max(0.0, (cache.expire_time - now).total_seconds())
        usage = cache.usage_metadata
        return {
            "name": cache.name,
            "display_name": cache.display_name,
            "model": cache.model,
            "create_time": cache.create_time,
            "update_time": cache.update_time,
            "expire_time": cache.expire_time,
            "ttl_remaining_seconds": remaining,
            "total_token_count": usage.total_token_count if usage is not None else None,
        }

    # -- generating -------------------------------------------------------------------------

    async def generate_with_cache(
        self,
        cache_name: str,
        prompt: Contents,
        model: str | None = None,
        max_retries: int = 5,
        **generate_kwargs: Any,
    ) -> types.GenerateContentResponse:
        """``generate_with_retry`` on ``prompt`` with the cache as context.

        ``model`` defaults to the cache's model. Other keyword arguments are those of
        ``generate_with_retry`` (``temperature``, ``max_output_tokens``, ``on_retry``, ...).
        """
        model = await self._model_of(cache_name, model)
        response: types.GenerateContentResponse = await self._client.generate_with_retry(
            prompt,
            max_retries,
            streaming=False,
            model=model,
            cached_content=cache_name,
            **generate_kwargs,
        )
        return response

    def generate_with_cache_stream(
        self,
        cache_name: str,
        prompt: Contents,
        model: str | None = None,
        max_retries: int = 5,
        return_chunks: bool = False,
        **generate_kwargs: Any,
    ) -> AsyncStream[StreamItem]:
        """The streamed form of ``generate_with_cache``: text chunks, or raw response chunks
        with ``return_chunks``; a broken stream is resumed as ``generate_with_retry`` does.
        It takes the forms of the client's ``generate_content_stream``, and nothing is sent
        before the first chunk is asked for."""
        return AsyncStream(
            lambda: self._cache_stream(
                cache_name, prompt, model, max_retries, return_chunks, generate_kwargs
            )
        )

    async def _cache_stream(
        self,
        cache_name: str,
        prompt: Contents,
        model: str | None,
        max_retries: int,
        return_chunks: bool,
        generate_kwargs: dict[str, Any],
    ) -> AsyncIterator[StreamItem]:
        model = await self._model_of(cache_name, model)
        stream = await self._client.generate_with_retry(
            prompt,
            max_retries,
            streaming=True,
            return_chunks=return_chunks,
            model=model,
            cached_content=cache_name,
            **generate_kwargs,
        )
        try:
            # A plain loop, not `yield from`, which has no form that suits both clients.
            while (item := await anext(stream, None)) is not None:
                yield item
        finally:
            await async_close_iterator(stream)

    async def _model_of(self, cache_name: str, model: str | None) -> str:
        """The model to generate with: the one given, else the cache's own."""
        if model:
            return model
        if cache_name not in self._models:
            await self.get_cache(cache_name)
        return self._models.get(cache_name) or self.config.model
