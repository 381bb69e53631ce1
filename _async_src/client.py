"""The Gemini client: generation, streaming, retries and token counting under the limiter.

This file is the only hand-written copy of the client. ``make generate`` turns it into the
sync client; keep comments and docstrings true for both.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import google.auth.exceptions
from google import genai
from google.genai import errors, types

from .. import _telemetry, auth
from .._core import function_calling
from .._core.embedding import plan_embedding
from .._core.request import (
    Contents,
    GenerateConfig,
    GenerateRequest,
    SafetySettings,
    Tools,
    build_request,
    estimate_tokens,
    priced_estimate,
)
from .._core.retry import (
    MANAGEMENT_ATTEMPTS,
    RetryCallback,
    RetryPolicy,
    backoff_delay,
    classify,
    is_rejected_api_key,
    may_resend,
)
from .._core.token_estimate import UnsizedMedia
from .._core.usage import UsageMeter
from .._primitives import (
    AsyncLock,
    AsyncResult,
    AsyncStream,
    async_call_tool,
    async_check_tool,
    async_close_iterator,
    async_close_sdk,
    async_run_blocking,
    async_sdk,
    async_sleep,
)
from ..config import GreyCloudConfig
from ..errors import (
    AuthError,
    ConfigError,
    QuotaExhaustedError,
    RetryExhaustedError,
    StreamInterruptedError,
)
from .chats import GreyCloudAsyncChats
from .embeddings import embed_planned
from .grounding import SearchGrounding
from .rate_limiter import Permit, VertexRateLimiter

logger = logging.getLogger("greycloud.client")

StreamItem = str | types.GenerateContentResponse
# What a credential refresh may fix: the server's 401, or credentials the SDK could not refresh.
AuthFailure = errors.APIError | google.auth.exceptions.RefreshError

DEFAULT_BASE_DELAY = 1.0
DEFAULT_MAX_DELAY = 60.0
DEFAULT_MAX_RETRIES = 5
# gen_ai.operation.name of each kind of call (the OpenTelemetry GenAI conventions).
GENERATE = "generate_content"
CHAT = "chat"
EMBEDDINGS = "embeddings"
# countTokens has its own quota on Vertex, so it is limited under its own key, not the model's.
COUNT_TOKENS_KEY = "countTokens:{model}"
# Errors that mean the service cannot count tokens for this request (not a passing failure).
_CANNOT_COUNT_STATUS = frozenset({400, 404, 501})


class GreyCloudAsyncClient:
    """Gemini on Vertex AI (or the Gemini Developer API) with limits, retries and auth refresh.

    ``rpm``, ``tpm`` and ``max_concurrency`` override the config's limits; pass ``rate_limiter``
    instead to share one limiter between clients. ``credentials`` takes any google-auth
    credentials; without it they come from the config (API key, ADC, impersonation, gcloud).
    ``usage`` is the ``UsageMeter`` that adds up the tokens of every answer (``client.usage``;
    pass one meter to several clients to add up their tokens together).
    """

    def __init__(
        self,
        config: GreyCloudConfig | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrency: int | None = None,
        *,
        credentials: auth.Credentials | None = None,
        rate_limiter: VertexRateLimiter | None = None,
        usage: UsageMeter | None = None,
    ) -> None:
        overrides = {
            name: value
            for name, value in (("rpm", rpm), ("tpm", tpm), ("max_concurrency", max_concurrency))
            if value is not None
        }
        if rate_limiter is not None and overrides:
            raise ConfigError(
                "rate_limiter",
                f"pass either rate_limiter= or {', '.join(overrides)}=, not both: "
                "a shared limiter carries its own limits",
            )
        base = config if config is not None else GreyCloudConfig()
        self.config = base.replace(**overrides) if overrides else base
        # Credentials first: when they are missing, nothing has been opened that needs closing.
        self._api_key = self.config.resolved_api_key()
        self._credentials = credentials
        if credentials is None and self._api_key is None:
            self._credentials = auth.find_credentials(self.config)
        self._owns_limiter = rate_limiter is None
        self.rate_limiter = (
            rate_limiter if rate_limiter is not None else VertexRateLimiter.from_config(self.config)
        )
        self.usage = usage if usage is not None else UsageMeter()
        """Tokens of every answer this client received, by model and kind."""
        self._telemetry = _telemetry.for_client(
            *_telemetry.server_of(self.config), limiter=self.rate_limiter
        )
        self._sdk = self._build_sdk()
        self._grounding = SearchGrounding(self.config, lambda: self._credentials, self._api_key)
        self._retired: list[genai.Client] = []
        self._auth_lock = AsyncLock()
        self._auth_generation = 0
        # countTokens answers for media of unknown size, per (model, URI, MIME type, resolution).
        self._media_counts: dict[tuple[str, str, str, str | None], int] = {}
        self._media_locks: dict[tuple[str, str, str, str | None], AsyncLock] = {}

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def client(self) -> genai.Client:
        """The google-genai client in use (replaced after a credential refresh)."""
        return self._sdk

    @property
    def credentials(self) -> auth.Credentials | None:
        """The google-auth credentials in use (None with an API key)."""
        return self._credentials

    def _build_sdk(self) -> genai.Client:
        config = self.config
        http_options = types.HttpOptions(
            base_url=config.endpoint,
            api_version=config.api_version,
            timeout=None if config.timeout is None else int(config.timeout * 1000),
            # greycloud owns retries, so that every attempt passes the limiter.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if self._api_key is not None:
            return genai.Client(
                vertexai=config.vertexai, api_key=self._api_key, http_options=http_options
            )
        return genai.Client(
            vertexai=True,
            project=config.project_id,
            location=config.location,
            credentials=self._credentials,
            http_options=http_options,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections (and the limiter, when this client created it)."""
        for sdk in [*self._retired, self._sdk]:
            await async_close_sdk(sdk)
        self._retired.clear()
        self._grounding.close()
        if self._owns_limiter:
            await self.rate_limiter.aclose()

    async def __aenter__(self) -> GreyCloudAsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- generation -------------------------------------------------------------------------

    @property
    def chats(self) -> GreyCloudAsyncChats:
        """Chat sessions (``client.chats.create(...)``, as in google-genai) whose every turn is
        a ``generate_with_retry`` call: limited, retried, resumed, functions run once."""
        return GreyCloudAsyncChats(self)

    async def generate_content(
        self,
        contents: Contents,
        model: str | None = None,
        system_instruction: Any = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_output_tokens: int | None = None,
        safety_settings: SafetySettings | None = None,
        tools: Tools | None = None,
        thinking_level: str | None = None,
        cached_content: str | None = None,
        config: GenerateConfig | None = None,
        **kwargs: Any,
    ) -> types.GenerateContentResponse:
        """One generation call (no retries; see ``generate_with_retry``).

        ``config`` takes a ``GenerateContentConfig`` or its dict, as google-genai does; a
        keyword argument beats the same field of ``config``, which beats the greycloud config.
        Python functions in ``tools`` are run by greycloud, one limited request per hop.
        """
        request = self._build(
            contents,
            model,
            system_instruction,
            temperature,
            top_p,
            max_output_tokens,
            safety_settings,
            tools,
            thinking_level,
            cached_content,
            config,
            kwargs,
        )
        return await self._generate(request, None)

    @overload
    def generate_content_stream(
        self,
        contents: Contents,
        model: str | None = ...,
        system_instruction: Any = ...,
        temperature: float | None = ...,
        top_p: float | None = ...,
        max_output_tokens: int | None = ...,
        safety_settings: SafetySettings | None = ...,
        tools: Tools | None = ...,
        thinking_level: str | None = ...,
        cached_content: str | None = ...,
        return_chunks: Literal[False] = ...,
        config: GenerateConfig | None = ...,
        **kwargs: Any,
    ) -> AsyncStream[str]: ...

    @overload
    def generate_content_stream(
        self,
        contents: Contents,
        model: str | None = ...,
        system_instruction: Any = ...,
        temperature: float | None = ...,
        top_p: float | None = ...,
        max_output_tokens: int | None = ...,
        safety_settings: SafetySettings | None = ...,
        tools: Tools | None = ...,
        thinking_level: str | None = ...,
        cached_content: str | None = ...,
        *,
        return_chunks: Literal[True],
        config: GenerateConfig | None = ...,
        **kwargs: Any,
    ) -> AsyncStream[types.GenerateContentResponse]: ...

    def generate_content_stream(
        self,
        contents: Contents,
        model: str | None = None,
        system_instruction: Any = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_output_tokens: int | None = None,
        safety_settings: SafetySettings | None = None,
        tools: Tools | None = None,
        thinking_level: str | None = None,
        cached_content: str | None = None,
        return_chunks: bool = False,
        config: GenerateConfig | None = None,
        **kwargs: Any,
    ) -> AsyncStream[StreamItem]:
        """Stream the answer (one attempt): text chunks, or the raw response chunks with
        ``return_chunks``. The result may be iterated at once, or first awaited as in
        google-genai; nothing is sent before the first chunk is asked for."""
        request = self._build(
            contents,
            model,
            system_instruction,
            temperature,
            top_p,
            max_output_tokens,
            safety_settings,
            tools,
            thinking_level,
            cached_content,
            config,
            kwargs,
        )
        if return_chunks:
            return AsyncStream(lambda: self._stream(request, None))
        return AsyncStream(lambda: _texts(self._stream(request, None)))

    @overload
    def generate_with_retry(
        self,
        contents: Contents,
        max_retries: int = ...,
        streaming: Literal[False] = ...,
        base_delay: float = ...,
        max_delay: float = ...,
        return_chunks: bool = ...,
        on_retry: RetryCallback | None = ...,
        **generate_kwargs: Any,
    ) -> AsyncResult[types.GenerateContentResponse]: ...

    @overload
    def generate_with_retry(
        self,
        contents: Contents,
        max_retries: int = ...,
        *,
        streaming: Literal[True],
        base_delay: float = ...,
        max_delay: float = ...,
        return_chunks: Literal[False] = ...,
        on_retry: RetryCallback | None = ...,
        **generate_kwargs: Any,
    ) -> AsyncStream[str]: ...

    @overload
    def generate_with_retry(
        self,
        contents: Contents,
        max_retries: int = ...,
        *,
        streaming: Literal[True],
        base_delay: float = ...,
        max_delay: float = ...,
        return_chunks: Literal[True],
        on_retry: RetryCallback | None = ...,
        **generate_kwargs: Any,
    ) -> AsyncStream[types.GenerateContentResponse]: ...

    @overload
    def generate_with_retry(
        self,
        contents: Contents,
        max_retries: int = ...,
        *,
        streaming: Literal[True],
        base_delay: float = ...,
        max_delay: float = ...,
        return_chunks: bool,
        on_retry: RetryCallback | None = ...,
        **generate_kwargs: Any,
    ) -> AsyncStream[StreamItem]: ...

    def generate_with_retry(
        self,
        contents: Contents,
        max_retries: int = DEFAULT_MAX_RETRIES,
        streaming: bool = False,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        return_chunks: bool = False,
        on_retry: RetryCallback | None = None,
        **generate_kwargs: Any,
    ) -> AsyncResult[types.GenerateContentResponse] | AsyncStream[StreamItem]:
        """``generate_content`` (or, with ``streaming``, a stream) that retries transient errors.

        Retried: 408, 429, 500, 502, 503, 504 and transport failures, with exponential backoff
        and jitter capped at ``max_delay``, never sooner than the server's retry delay. Other
        errors are raised at once. A stream that breaks is restarted; text already delivered is
        never delivered twice (``StreamInterruptedError`` if the restart diverges from it).
        ``on_retry(attempt, error, delay)`` is called before each backoff sleep, e.g. to count
        retries; ``attempt`` is the number of the attempt that failed (1 for the first).
        With Python functions in ``tools``, each model request of the exchange is retried on
        its own, and a function that ran is never run again.

        A stream may be iterated at once, or first awaited as in google-genai; nothing is
        sent before the first chunk is asked for. Bad arguments raise ``ConfigError`` here.
        """
        if max_retries < 0:
            raise ConfigError("max_retries", f"must be 0 or more, got {max_retries}")
        request = self._build(contents, **generate_kwargs)
        retry = RetryPolicy(max_retries, base_delay, max_delay, on_retry)
        if not streaming:
            return self._generate(request, retry)
        if return_chunks:
            return AsyncStream(lambda: self._stream(request, retry))
        return AsyncStream(lambda: _texts(self._stream(request, retry)))

    def _chat_turn(
        self, contents: list[types.Content], model: str | None, config: GenerateConfig | None
    ) -> AsyncResult[types.GenerateContentResponse]:
        """A chat turn: ``generate_with_retry`` with its defaults, traced as a chat."""
        request = self._build(contents, model=model, config=config)
        return self._generate(request, _CHAT_RETRY, CHAT)

    def _chat_turn_stream(
        self,
        contents: list[types.Content],
        model: str | None,
        config: GenerateConfig | None,
        on_hop: Callable[[], None],
    ) -> AsyncStream[types.GenerateContentResponse]:
        """A streamed chat turn; ``on_hop()`` is told when a function-calling hop ends and the
        next begins (the chunks say so only when the exchange is kept in them)."""
        request = self._build(contents, model=model, config=config)
        return AsyncStream(lambda: self._stream(request, _CHAT_RETRY, CHAT, on_hop))

    async def count_tokens(
        self,
        contents: Contents,
        system_instruction: Any = None,
        model: str | None = None,
    ) -> int:
        """Tokens in ``contents`` as the service counts them.

        Falls back to an estimate, with a warning, only when the service cannot count this
        request (the API or model does not support it); other errors are raised.
        """
        model = model or self.config.model
        system = (
            system_instruction
            if system_instruction is not None
            else (self.config.system_instruction)
        )
        count_config = (
            types.CountTokensConfig(system_instruction=system) if system is not None else None
        )
        with self._telemetry.operation("count_tokens", model):
            try:
                return await self._count(model, contents, count_config)
            except (ValueError, NotImplementedError) as exc:
                estimate = estimate_tokens(contents, system, model)
                logger.warning(
                    "the service could not count tokens for %s (%s); using an estimate of %d",
                    model,
                    exc,
                    estimate,
                )
                return estimate

    async def _count(
        self, model: str, contents: Contents, config: types.CountTokensConfig | None
    ) -> int:
        """``countTokens``, booked under its own limiter key. Raises the error when the service
        cannot count this request (API or model without support); other errors too."""
        async with self.rate_limiter.limit(COUNT_TOKENS_KEY.format(model=model), 0):
            try:
                result = await self._call_with_auth(
                    "models", "count_tokens", model=model, contents=contents, config=config
                )
            except errors.APIError as exc:
                if exc.code not in _CANNOT_COUNT_STATUS:
                    raise
                raise ValueError(str(exc)) from exc
        return int(result.total_tokens or 0)

    # -- embeddings -------------------------------------------------------------------------

    async def embed_content(
        self,
        contents: Contents,
        model: str | None = None,
        *,
        task_type: str | None = None,
        output_dimensionality: int | None = None,
        title: str | None = None,
        auto_truncate: bool | None = None,
        config: types.EmbedContentConfig | dict[str, Any] | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        on_retry: RetryCallback | None = None,
    ) -> types.EmbedContentResponse:
        """One embedding per input (a text, Part or Content; a list is one input per item), in
        input order, from ``model`` (default: the config's ``embedding_model``).

        The inputs are split into as many requests as the model's per-request limits need;
        they run concurrently, each under the model's own limits, retried like
        ``generate_with_retry``. Keyword arguments win over the fields of ``config`` (an
        ``EmbedContentConfig`` or a dict). Bad input raises ``ConfigError`` before anything
        is sent.
        """
        if max_retries < 0:
            raise ConfigError("max_retries", f"must be 0 or more, got {max_retries}")
        model = model or self.config.embedding_model
        tpm = self.config.limits_for(model)["tpm"]
        plan = plan_embedding(
            contents,
            model,
            vertexai=self.config.vertexai,
            task_type=task_type,
            output_dimensionality=output_dimensionality,
            title=title,
            auto_truncate=auto_truncate,
            config=config,
            # A request must fit in the token quota, or it could never start ("auto" has none).
            max_request_tokens=None if tpm == "auto" else tpm,
        )
        retry = RetryPolicy(max_retries, DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, on_retry)
        with self._telemetry.operation(EMBEDDINGS, model) as traced:
            return await embed_planned(self, plan, retry, traced)

    # -- internals --------------------------------------------------------------------------

    def _build(
        self,
        contents: Contents,
        model: str | None = None,
        system_instruction: Any = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_output_tokens: int | None = None,
        safety_settings: SafetySettings | None = None,
        tools: Tools | None = None,
        thinking_level: str | None = None,
        cached_content: str | None = None,
        config: GenerateConfig | None = None,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> GenerateRequest:
        """The request to send, call arguments resolved against the config (not grounded yet:
        grounding may search, so it happens when the call runs)."""
        request = build_request(
            self.config,
            contents,
            model=model,
            system_instruction=system_instruction,
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=max_output_tokens,
            safety_settings=safety_settings,
            tools=tools,
            thinking_level=thinking_level,
            cached_content=cached_content,
            generate_config=config,
            extra={**(extra or {}), **kwargs},
        )
        if request.function_loop is not None:
            for function in request.function_loop.functions.values():
                async_check_tool(function)
        return request

    async def _ground(self, request: GenerateRequest) -> GenerateRequest:
        """The request as it is sent: grounded, and its media of unknown size priced."""
        request = await self._grounding.ground(request, explicit_tools=request.caller_tools)
        return await self._price_media(request)

    async def _price_media(self, request: GenerateRequest) -> GenerateRequest:
        """Price the media whose size could not be read locally: by ``countTokens`` (once per
        URI) with ``media_token_estimate="count"``, otherwise by the learned average."""
        unsized = request.estimate.unsized
        if not unsized:
            return request
        counts: list[int | None] = []
        for media in unsized:
            counted = None
            if self.config.media_token_estimate == "count":
                counted = await self._count_media(request, media)
            counts.append(counted)
        priced = priced_estimate(
            request,
            counts,
            lambda modality: self.rate_limiter.media_average(request.model, modality),
        )
        return dataclasses.replace(request, priced=priced)

    async def _count_media(self, request: GenerateRequest, media: UnsizedMedia) -> int | None:
        """The service's count of one media part, cached per (model, URI, MIME type,
        resolution); None when it cannot count it (the learned average is used then)."""
        resolution = request.config.media_resolution if request.config is not None else None
        config = (
            types.CountTokensConfig(
                generation_config=types.GenerationConfig(media_resolution=resolution)
            )
            if resolution is not None
            else None
        )
        part = media.part
        if isinstance(part, Mapping):
            part = types.Part.model_validate(part)
        if media.uri is None:  # inline bytes of an unknown format: nothing to cache them by
            return await self._count_or_none(request.model, [part], config)
        key = (request.model, media.uri, media.mime_type, media.resolution)
        # One count per key, also for calls running side by side (each key its own lock).
        lock = self._media_locks.setdefault(key, AsyncLock())
        async with lock:
            counted = self._media_counts.get(key)
            if counted is None:
                counted = await self._count_or_none(request.model, [part], config)
                if counted is not None:
                    self._media_counts[key] = counted
            return counted

    async def _count_or_none(
        self, model: str, contents: Contents, config: types.CountTokensConfig | None
    ) -> int | None:
        """The count, or None (with a warning) when it failed: the call goes on with the
        learned average rather than fail for want of an estimate."""
        try:
            return await self._count(model, contents, config)
        except (errors.APIError, ValueError, NotImplementedError) as exc:
            logger.warning("could not count a media part for %s (%s)", model, exc)
            return None

    async def _generate(
        self, request: GenerateRequest, retry: RetryPolicy | None, operation: str = GENERATE
    ) -> types.GenerateContentResponse:
        """One answer, traced as one ``operation``."""
        with self._telemetry.operation(operation, request.model, request) as traced:
            response = await self._generate_hops(request, retry, traced)
            traced.answered(response)
            return response

    async def _generate_hops(
        self, request: GenerateRequest, retry: RetryPolicy | None, traced: _telemetry.Operation
    ) -> types.GenerateContentResponse:
        """One answer: one request, or with Python functions one request per hop."""
        request = await self._ground(request)
        loop = request.function_loop
        if loop is None:
            return await self._generate_attempts(request, retry, traced)
        history: list[types.Content] = []
        hop = 0
        while True:
            hop += 1
            response = await self._generate_attempts(request, retry, traced)
            turn = function_calling.model_turn(response)
            calls = function_calling.calls_in(turn.parts if turn is not None else None)
            if turn is None or not calls or hop >= loop.maximum_remote_calls:
                break
            replies = await self._run_functions(loop, calls)
            if not history:
                history = function_calling.start_history(request.contents)
            history = [*history, turn, function_calling.replies_turn(replies)]
            request = request.next_hop(history)
        if loop.keep_history:
            response.automatic_function_calling_history = history
        return response

    async def _generate_attempts(
        self, request: GenerateRequest, retry: RetryPolicy | None, traced: _telemetry.Operation
    ) -> types.GenerateContentResponse:
        attempt = 0
        while True:
            attempt += 1
            try:
                with traced.attempt(attempt) as step:
                    return await self._generate_once(request, step)
            except Exception as exc:
                if retry is None:
                    raise
                await self._wait_before_retry(
                    exc, attempt, retry, model=request.model, traced=traced
                )

    async def _stream(
        self,
        request: GenerateRequest,
        retry: RetryPolicy | None,
        operation: str = GENERATE,
        on_hop: Callable[[], None] | None = None,
    ) -> AsyncIterator[types.GenerateContentResponse]:
        """The chunks of the answer, traced as one ``operation``."""
        # Never made current across a yield: see greycloud/_telemetry.py.
        with self._telemetry.operation(operation, request.model, request, streaming=True) as traced:
            with traced.current():
                request = await self._ground(request)
            hops = self._stream_hops(request, retry, traced, on_hop)
            try:
                async for chunk in hops:
                    traced.chunk(chunk)
                    yield chunk
            finally:
                await async_close_iterator(hops)

    async def _stream_hops(
        self,
        request: GenerateRequest,
        retry: RetryPolicy | None,
        traced: _telemetry.Operation,
        on_hop: Callable[[], None] | None = None,
    ) -> AsyncIterator[types.GenerateContentResponse]:
        """The chunks of the answer; with Python functions, of every hop, the functions run
        between hops (each hop's stream is resumed on its own)."""
        loop = request.function_loop
        history: list[types.Content] = []
        hop = 0
        while True:
            hop += 1
            said: list[types.Part] = []
            hop_stream = self._stream_attempts(request, retry, traced)
            try:
                async for chunk in hop_stream:
                    if loop is not None:
                        turn = function_calling.model_turn(chunk)
                        if turn is not None and turn.parts:
                            said.extend(turn.parts)
                        if history and loop.keep_history:
                            chunk.automatic_function_calling_history = history
                    yield chunk
            finally:
                await async_close_iterator(hop_stream)
            if loop is None:
                return
            calls = function_calling.calls_in(said)
            if not calls or hop >= loop.maximum_remote_calls:
                return
            replies = await self._run_functions(loop, calls)
            if not history:
                history = function_calling.start_history(request.contents)
            turn = types.Content(role="model", parts=said)
            history = [*history, turn, function_calling.replies_turn(replies)]
            request = request.next_hop(history)
            if on_hop is not None:
                on_hop()

    def _stream_attempts(
        self, request: GenerateRequest, retry: RetryPolicy | None, traced: _telemetry.Operation
    ) -> AsyncIterator[types.GenerateContentResponse]:
        if retry is None:
            return self._stream_once(request, traced.attempt(1))
        return self._stream_with_retry(request, retry, traced)

    async def _run_functions(
        self, loop: function_calling.FunctionLoop, calls: list[types.FunctionCall]
    ) -> list[types.Part]:
        """Run each function the model called, once, in order; a failure is reported back."""
        replies = []
        for call in calls:
            function = loop.functions.get(call.name or "")
            try:
                if function is None:
                    raise function_calling.unknown_function(call, loop)
                arguments = function_calling.arguments_for(function, call.args)
                result = await async_call_tool(function, arguments)
            except Exception as exc:
                logger.info("function %s raised %r; reported to the model", call.name, exc)
                replies.append(function_calling.reply_part(call, error=exc))
            else:
                replies.append(function_calling.reply_part(call, result=result))
        return replies

    async def _call_with_auth(self, surface: str, method: str, **arguments: Any) -> Any:
        """Call the SDK's ``<surface>.<method>`` (e.g. ``models.generate_content``); after a
        401, refresh the credentials and call once more. Also used by the cache and batch
        classes, so that every service call refreshes credentials the same way; their calls
        are also sent again after a transient failure, when that is safe (``may_resend``)."""
        # Generation and counting are traced by their callers; caches and batches here.
        traced = (
            _telemetry.NO_OPERATION
            if surface == "models"
            else self._telemetry.operation(f"{surface}.{method}", str(arguments.get("model", "")))
        )
        # Caches and batch jobs are retried here, when safe; generation by its own callers.
        retries = RetryPolicy(
            0 if surface == "models" else MANAGEMENT_ATTEMPTS - 1,
            DEFAULT_BASE_DELAY,
            DEFAULT_MAX_DELAY,
            None,
        )
        refreshed = failures = 0
        with traced:
            while True:
                generation = self._auth_generation
                try:
                    service = getattr(async_sdk(self._sdk), surface)
                    return await getattr(service, method)(**arguments)
                except (errors.ClientError, google.auth.exceptions.RefreshError) as exc:
                    if await self._recover_auth(exc, refreshed + 1, generation):
                        refreshed += 1
                        continue
                    _raise_if_per_day(exc)
                    if not retries.max_retries or not may_resend(method, exc):
                        raise
                    failed: Exception = exc
                except Exception as exc:
                    if not retries.max_retries or not may_resend(method, exc):
                        raise
                    failed = exc
                failures += 1
                await self._wait_before_retry(
                    failed, failures, retries, model=f"{surface}.{method}", traced=traced
                )

    async def _generate_once(
        self, request: GenerateRequest, step: _telemetry.Attempt
    ) -> types.GenerateContentResponse:
        async with self.rate_limiter.limit(request.model, request.booked_tokens) as permit:
            step.waited(permit.waited)
            try:
                response: types.GenerateContentResponse = await self._call_with_auth(
                    "models",
                    "generate_content",
                    model=request.model,
                    contents=request.contents,
                    config=request.config,
                )
            except (errors.APIError, QuotaExhaustedError) as exc:
                await self._report(request.model, exc, permit)
                raise
            await permit.reconcile(response.usage_metadata)
            self.usage.add(request.model, response.usage_metadata)
            step.answered(response)
            return response

    async def _stream_once(
        self, request: GenerateRequest, step: _telemetry.Attempt
    ) -> AsyncIterator[types.GenerateContentResponse]:
        """One streamed attempt holding one limiter slot until the stream ends in any way."""
        with step:
            async with self.rate_limiter.limit(request.model, request.booked_tokens) as permit:
                step.waited(permit.waited)
                usage = None
                last = None
                for auth_attempt in (1, 2):
                    generation = self._auth_generation
                    received = False
                    stream = None
                    try:
                        stream = await async_sdk(self._sdk).models.generate_content_stream(
                            model=request.model, contents=request.contents, config=request.config
                        )
                        async for chunk in stream:
                            received = True
                            if chunk.usage_metadata is not None:
                                usage, last = chunk.usage_metadata, chunk
                            yield chunk
                        break
                    except (errors.APIError, google.auth.exceptions.RefreshError) as exc:
                        if not received and await self._recover_auth(exc, auth_attempt, generation):
                            continue
                        if isinstance(exc, errors.APIError):
                            await self._report(request.model, exc, permit)
                            _raise_if_per_day(exc)
                        raise
                    finally:
                        if stream is not None:
                            await async_close_iterator(stream)
                await permit.reconcile(usage)
                self.usage.add(request.model, usage)
                if last is not None:
                    step.answered(last)

    async def _stream_with_retry(
        self, request: GenerateRequest, retry: RetryPolicy, traced: _telemetry.Operation
    ) -> AsyncIterator[types.GenerateContentResponse]:
        delivered = ""  # text the caller already has, across attempts
        calls_delivered = 0  # function calls the caller already has, across attempts
        attempt = 0
        while True:
            attempt += 1
            position = 0  # characters of text this attempt has produced so far
            calls_seen = 0  # function calls this attempt has produced so far
            attempt_stream = self._stream_once(request, traced.attempt(attempt))
            try:
                async for chunk in attempt_stream:
                    text = _text_of(chunk)
                    # The start of a restarted stream repeats what the caller already has.
                    overlap = max(0, min(len(text), len(delivered) - position))
                    if text[:overlap] != delivered[position : position + overlap]:
                        raise StreamInterruptedError(
                            f"the restarted stream (attempt {attempt}) differs from the "
                            f"{len(delivered)} characters already delivered",
                            partial_text=delivered,
                            attempts=attempt,
                        )
                    position += len(text)
                    fresh = text[overlap:]
                    # Function calls repeated by a restart would be run twice: drop them too.
                    calls = _calls_in(chunk)
                    repeated = max(0, min(calls, calls_delivered - calls_seen))
                    calls_seen += calls
                    nothing_new = not fresh and repeated == calls
                    if (overlap or repeated) and nothing_new and not chunk.usage_metadata:
                        continue
                    delivered += fresh
                    calls_delivered += calls - repeated
                    if overlap or repeated:
                        chunk = _without_repeats(chunk, fresh, repeated)
                    yield chunk
                return
            except StreamInterruptedError:
                raise
            except Exception as exc:
                try:
                    await self._wait_before_retry(
                        exc, attempt, retry, model=request.model, traced=traced
                    )
                except RetryExhaustedError as exhausted:
                    if delivered:
                        raise StreamInterruptedError(
                            f"the stream broke after {len(delivered)} characters and "
                            f"{attempt} attempts: {exc}",
                            partial_text=delivered,
                            attempts=attempt,
                        ) from exhausted.last_error
                    raise
                if delivered:
                    traced.resumed()
            finally:
                await async_close_iterator(attempt_stream)

    async def _wait_before_retry(
        self,
        exc: Exception,
        attempt: int,
        retry: RetryPolicy,
        *,
        model: str,
        traced: _telemetry.Operation = _telemetry.NO_OPERATION,
    ) -> None:
        """Return after the backoff if ``exc`` may be retried; otherwise raise. ``traced`` is
        the call's span, told the delay and the reason."""
        failure = classify(exc)  # a per-day 429 arrives here already as QuotaExhaustedError
        if not failure.transient:
            raise exc
        if attempt > retry.max_retries:
            raise RetryExhaustedError(attempt, exc) from exc
        delay = backoff_delay(attempt, retry.base_delay, retry.max_delay, failure.retry_after)
        status = exc.code if isinstance(exc, errors.APIError) else type(exc).__name__
        logger.info(
            "%s: attempt %d failed (%s); retrying in %.2fs",
            model,
            attempt,
            _telemetry.describe(exc),
            delay,
            extra={"model": model, "attempt": attempt, "status": status, "delay": delay},
        )
        traced.retrying(delay, exc)
        if retry.on_retry is not None:
            retry.on_retry(attempt, exc, delay)
        await async_sleep(delay)

    async def _report(
        self, model: str, exc: errors.APIError | QuotaExhaustedError, permit: Permit
    ) -> None:
        # A QuotaExhaustedError carries the 429 it was made from as its cause.
        cause = exc.__cause__ if isinstance(exc, QuotaExhaustedError) else None
        failure = classify(cause or exc)
        if failure.rate_limited:
            self._telemetry.rate_limited(model)
            await self.rate_limiter.report_rate_limited(
                model, failure.retry_after, per_day=failure.per_day, permit=permit
            )

    async def _recover_auth(self, exc: AuthFailure, attempt: int, generation: int) -> bool:
        """True when ``exc`` was an auth failure that a credential refresh fixed (try again).

        Auth failures are a 401 and credentials the SDK could not refresh. Raises ``AuthError``
        when they persist after a refresh or an API key is invalid; False for every other error
        (a 403 included: no refresh fixes a missing permission).
        """
        unauthenticated = not isinstance(exc, errors.APIError) or exc.code == 401
        rejected_key = isinstance(exc, errors.APIError) and is_rejected_api_key(exc)
        if rejected_key or (unauthenticated and attempt > 1):
            raise self._auth_error(exc) from exc
        if not unauthenticated:
            return False
        await self._refresh_auth(generation, exc)
        return True

    async def _refresh_auth(self, seen_generation: int, exc: AuthFailure) -> None:
        """Refresh the credentials and rebuild the SDK client, once for concurrent 401s."""
        async with self._auth_lock:
            if self._auth_generation != seen_generation:
                return  # another call refreshed them meanwhile
            if self._credentials is None:
                raise self._auth_error(exc) from exc
            logger.info("the server rejected the credentials (401); refreshing them")
            self._credentials = await async_run_blocking(
                auth.refresh_credentials,
                self._credentials,
                self.config,
                isinstance(exc, errors.APIError),  # rejected by the server
            )
            self._retired.append(self._sdk)
            self._sdk = self._build_sdk()
            self._auth_generation += 1

    def _auth_error(self, exc: AuthFailure) -> AuthError:
        if not isinstance(exc, errors.APIError):
            return auth.no_credentials(str(exc))  # they never produced a token
        reason = exc.message
        if self._api_key is not None:
            return AuthError(
                f"the API key was rejected: {reason}",
                fix_command="check the key in api_key, API_KEY_FILE or GOOGLE_API_KEY",
            )
        return AuthError(
            f"the credentials were rejected after a refresh: {reason}",
            fix_command=auth.LOGIN_COMMAND,
        )


def _raise_if_per_day(exc: BaseException) -> None:
    """A 429 for a per-day quota becomes ``QuotaExhaustedError`` on every path: waiting minutes
    cannot help, so it must not look like the retryable 429 it came as."""
    failure = classify(exc)
    if failure.per_day:
        raise QuotaExhaustedError(
            f"a per-day quota is exhausted ({failure.quota_id}); retrying cannot help before it "
            "resets",
            failure.quota_id,
        ) from exc


async def _texts(chunks: AsyncIterator[types.GenerateContentResponse]) -> AsyncIterator[str]:
    """The text of each chunk that has some."""
    try:
        async for chunk in chunks:
            text = _text_of(chunk)
            if text:
                yield text
    finally:
        # Closing this generator does not close the one it reads: close it now, so that its
        # request and limiter slot end with the caller's stream, not whenever it is collected.
        await async_close_iterator(chunks)


def _text_of(chunk: types.GenerateContentResponse) -> str:
    """``chunk.text or ""``, without the SDK's ``model_dump`` of every part (a few us a chunk):
    the text parts of the first candidate, thoughts left out."""
    candidates = chunk.candidates
    content = candidates[0].content if candidates else None
    if content is None or not content.parts:
        return ""
    return "".join(
        part.text for part in content.parts if isinstance(part.text, str) and not part.thought
    )


def _calls_in(chunk: types.GenerateContentResponse) -> int:
    """How many function calls the chunk's first candidate makes."""
    content = chunk.candidates[0].content if chunk.candidates else None
    return sum(1 for part in (content.parts or []) if part.function_call) if content else 0


def _without_repeats(
    chunk: types.GenerateContentResponse, text: str, repeated_calls: int
) -> types.GenerateContentResponse:
    """A copy of ``chunk`` holding only what was not delivered before: ``text`` and the
    function calls after the first ``repeated_calls``."""
    copy = chunk.model_copy(deep=True)
    if copy.candidates and copy.candidates[0].content is not None:
        content = copy.candidates[0].content
        calls = [part for part in content.parts or [] if part.function_call][repeated_calls:]
        content.parts = ([types.Part(text=text)] if text else []) + calls
    return copy


_CHAT_RETRY = RetryPolicy(DEFAULT_MAX_RETRIES, DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, None)
_Backed = TypeVar("_Backed", bound="_ClientBacked")


class _ClientBacked:
    """Base of the cache and batch classes, which do their work through a greycloud client.

    A given ``client`` is shared as it is (its SDK connection, credentials and limiter), so it
    cannot be combined with the arguments that would build another one; without it a client is
    built from ``config``, ``credentials`` and ``rate_limiter`` and closed with this object.
    """

    def __init__(
        self,
        config: GreyCloudConfig | None,
        credentials: auth.Credentials | None,
        rate_limiter: VertexRateLimiter | None,
        client: GreyCloudAsyncClient | None,
    ) -> None:
        given = [
            name
            for name, value in (
                ("config", config),
                ("credentials", credentials),
                ("rate_limiter", rate_limiter),
            )
            if value is not None
        ]
        if client is not None and given:
            raise ConfigError(
                "client",
                f"pass either client= or {', '.join(given)}=, not both: the client carries its own",
            )
        self._owns_client = client is None
        self._client = (
            client
            if client is not None
            else GreyCloudAsyncClient(config, credentials=credentials, rate_limiter=rate_limiter)
        )

    @property
    def client(self) -> GreyCloudAsyncClient:
        """The greycloud client whose connection, credentials and limiter are used."""
        return self._client

    @property
    def config(self) -> GreyCloudConfig:
        return self._client.config

    @property
    def rate_limiter(self) -> VertexRateLimiter:
        return self._client.rate_limiter

    async def aclose(self) -> None:
        """Close the client, when this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self: _Backed) -> _Backed:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
