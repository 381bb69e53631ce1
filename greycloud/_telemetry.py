"""OpenTelemetry traces and metrics for the clients' calls, by the GenAI semantic conventions.

One span per public call (``generate_content gemini-2.5-flash``), a child span per attempt
(``greycloud.attempt``), greycloud's own ``greycloud.*`` attributes for what only it knows
(limiter wait, retry delay and reason, stream resumptions, grounding), and the conventions'
client metrics plus greycloud's limiter metrics. Both halves of the client use this module:
its spans are plain (sync) context managers that never touch an event loop, and the ones held
across a generator's ``yield`` are never made current (a context attached in one step of a
generator cannot be detached safely in another).

Without the ``otel`` extra (``opentelemetry-api``) nothing is imported from opentelemetry and
every hook is a shared object whose methods do nothing. With it, the application chooses the
SDK and exporters; without an SDK the API's no-op tracer and meter make the hooks cheap.

Conventions: the latest experimental GenAI conventions (``gen_ai.provider.name``,
``gen_ai.usage.cache_read.input_tokens``, ``gen_ai.input.messages`` ...). Unless
``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``, spans also carry the
v1.36 name ``gen_ai.system``, so that dashboards built on it keep working. Prompt and answer
text is recorded only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is ``true``
(or, with the opt-in, ``SPAN_ONLY`` / ``SPAN_AND_EVENT``).
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from collections.abc import Iterable, Iterator
from importlib import metadata
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from google.genai import errors as sdk_errors

from ._core import genai_messages
from ._core.usage import usage_of

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:
    AVAILABLE = False
else:
    AVAILABLE = True

if TYPE_CHECKING:
    from google.genai import types

    from ._core.request import GenerateRequest
    from ._limiter.stats import LimiterStats
    from .config import GreyCloudConfig

INSTRUMENTATION = "greycloud"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
STABILITY_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"
ATTEMPT_SPAN = "greycloud.attempt"

# The request fields of GenerateContentConfig that the conventions name.
_REQUEST_ATTRIBUTES = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("seed", "gen_ai.request.seed"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("stop_sequences", "gen_ai.request.stop_sequences"),
    ("candidate_count", "gen_ai.request.choice.count"),
)


class WatchedLimiter(Protocol):
    def stats(self) -> LimiterStats: ...


# -- what runs without opentelemetry: shared objects that do nothing -----------------------------


class Attempt:
    """One attempt of an operation: one request on the wire."""

    __slots__ = ()

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def waited(self, seconds: float) -> None:
        """Seconds the attempt waited in the limiter for its start."""

    def answered(self, response: types.GenerateContentResponse) -> None:
        """The attempt got a whole answer (or, for a stream, its last chunk)."""


class Operation:
    """One public call (a span around its attempts)."""

    __slots__ = ()

    def __enter__(self) -> Operation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def attempt(self, number: int) -> Attempt:
        return _NO_ATTEMPT

    def current(self) -> contextlib.AbstractContextManager[None]:
        """Make the call's span current for a block that does not ``yield`` (a stream's)."""
        return contextlib.nullcontext()

    def retrying(self, delay: float, error: BaseException) -> None:
        """Attempt failed with ``error``; the next starts after ``delay`` seconds."""

    def resumed(self) -> None:
        """A stream broke after delivering text and is being restarted."""

    def chunk(self, chunk: types.GenerateContentResponse) -> None:
        """A stream delivered ``chunk`` to the caller."""

    def answered(self, response: types.GenerateContentResponse) -> None:
        """The call's (last) answer, for the call's span."""


class Telemetry:
    """A client's hooks: call ``operation`` for each public call."""

    __slots__ = ()

    def operation(
        self,
        name: str,
        model: str,
        request: GenerateRequest | None = None,
        *,
        streaming: bool = False,
    ) -> Operation:
        return _NO_OPERATION

    def rate_limited(self, model: str) -> None:
        """The server answered 429 for ``model``."""


_NO_ATTEMPT = Attempt()
_NO_OPERATION = Operation()
NO_OPERATION = _NO_OPERATION
"""The operation of a call that another span already covers."""
_NO_TELEMETRY = Telemetry()


def for_client(
    provider: str, server_address: str, server_port: int | None, *, limiter: WatchedLimiter
) -> Telemetry:
    """The hooks for one client (the shared no-op ones without opentelemetry)."""
    if not AVAILABLE:
        return _NO_TELEMETRY
    instruments = _Instruments.get()
    instruments.watch(limiter)
    return _Telemetry(provider, server_address, server_port, instruments)


def note_grounding(outcome: str, sources: int) -> None:
    """Record on the current span what grounding did (``inject``: sources were put in)."""
    if not AVAILABLE:
        return
    span = otel_trace.get_current_span()
    if span.is_recording():
        span.set_attribute("greycloud.grounding", outcome)
        span.set_attribute("greycloud.grounding.sources", sources)


def server_of(config: GreyCloudConfig) -> tuple[str, str, int | None]:
    """(``gen_ai.provider.name``, ``server.address``, ``server.port``) of a client's config."""
    provider = "gcp.vertex_ai" if config.vertexai else "gcp.gemini"
    if config.endpoint:
        url = urlsplit(config.endpoint)
        return provider, url.hostname or config.endpoint, url.port
    if not config.vertexai:
        return provider, "generativelanguage.googleapis.com", None
    if config.use_api_key or config.location == "global":
        return provider, "aiplatform.googleapis.com", None
    return provider, f"{config.location}-aiplatform.googleapis.com", None


def error_type(error: BaseException) -> str:
    """``error.type``: the HTTP status of an API error, else the exception's class name."""
    if isinstance(error, sdk_errors.APIError):
        return str(error.code)
    return type(error).__qualname__


def describe(error: BaseException) -> str:
    """Why an attempt failed, in a few words: ``503 UNAVAILABLE`` or the exception class."""
    if isinstance(error, sdk_errors.APIError):
        return f"{error.code} {error.status}"
    return type(error).__name__


# -- with opentelemetry --------------------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("greycloud")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "0"


class _Instruments:
    """The tracer and the metric instruments, made once per process (through the API's proxies,
    so a provider set later is still used)."""

    _made: _Instruments | None = None

    @classmethod
    def get(cls) -> _Instruments:
        if cls._made is None:
            cls._made = cls()
        return cls._made

    def __init__(self) -> None:
        version = _version()
        self.tracer = otel_trace.get_tracer(INSTRUMENTATION, version)
        meter = otel_metrics.get_meter(INSTRUMENTATION, version)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration."
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per response."
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the call to the first chunk of a stream.",
        )
        self.limiter_wait = meter.create_histogram(
            "greycloud.limiter.wait_time",
            unit="s",
            description="Time each attempt waited in the limiter for its start.",
        )
        self.retries = meter.create_counter(
            "greycloud.client.retries", unit="{retry}", description="Attempts that were retried."
        )
        self.rate_limited = meter.create_counter(
            "greycloud.client.rate_limited", unit="{response}", description="429 answers."
        )
        self._limiters: weakref.WeakSet[Any] = weakref.WeakSet()
        meter.create_observable_gauge(
            "greycloud.limiter.rate",
            callbacks=[self._observe_rates],
            unit="{request}/min",
            description="Requests per minute the limiter lets start now, per model.",
        )
        meter.create_observable_gauge(
            "greycloud.limiter.in_flight",
            callbacks=[self._observe_in_flight],
            unit="{request}",
            description="Requests started and not yet finished, per model.",
        )

    def watch(self, limiter: WatchedLimiter) -> None:
        self._limiters.add(limiter)

    def _models(self) -> Iterator[tuple[str, Any]]:
        for limiter in list(self._limiters):
            yield from limiter.stats().models.items()

    def _observe_rates(self, options: Any) -> Iterable[Any]:
        return [
            otel_metrics.Observation(stats.rpm, {"gen_ai.request.model": model})
            for model, stats in self._models()
        ]

    def _observe_in_flight(self, options: Any) -> Iterable[Any]:
        return [
            otel_metrics.Observation(stats.in_flight, {"gen_ai.request.model": model})
            for model, stats in self._models()
        ]


class _Telemetry(Telemetry):
    __slots__ = ("base", "capture", "instruments", "legacy_system")

    def __init__(
        self, provider: str, address: str, port: int | None, instruments: _Instruments
    ) -> None:
        opt_in = {v.strip() for v in os.environ.get(STABILITY_ENV, "").split(",")}
        latest = LATEST_EXPERIMENTAL in opt_in
        capture = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().upper()
        self.capture = capture in ({"SPAN_ONLY", "SPAN_AND_EVENT"} if latest else {"TRUE", "1"})
        self.instruments = instruments
        base: dict[str, Any] = {"gen_ai.provider.name": provider, "server.address": address}
        if port is not None:
            base["server.port"] = port
        self.base = base
        self.legacy_system = None if latest else provider

    def operation(
        self,
        name: str,
        model: str,
        request: GenerateRequest | None = None,
        *,
        streaming: bool = False,
    ) -> Operation:
        return _Operation(self, name, model, request, streaming)

    def rate_limited(self, model: str) -> None:
        self.instruments.rate_limited.add(1, {**self.base, "gen_ai.request.model": model})


class _Attempt(Attempt):
    __slots__ = ("_number", "_operation", "_span", "_token")

    def __init__(self, operation: _Operation, number: int) -> None:
        self._operation = operation
        self._number = number
        self._span: Any = None
        self._token: object | None = None

    def __enter__(self) -> Attempt:
        """Start the span (on entering: an attempt that never starts leaves no span)."""
        operation = self._operation
        attributes: dict[str, Any] = {"greycloud.attempt": self._number}
        if operation.pending_retry is not None:
            delay, reason = operation.pending_retry
            operation.pending_retry = None
            attributes["greycloud.retry.delay"] = delay
            attributes["greycloud.retry.reason"] = reason
        self._span = operation.telemetry.instruments.tracer.start_span(
            ATTEMPT_SPAN,
            context=operation.context,
            kind=otel_trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        if not operation.streaming:
            self._token = otel_context.attach(otel_trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        if exc is not None and not isinstance(exc, GeneratorExit):
            _mark_failed(self._span, exc)
        self._span.end()

    def waited(self, seconds: float) -> None:
        self._span.set_attribute("greycloud.limiter.wait", seconds)
        operation = self._operation
        operation.telemetry.instruments.limiter_wait.record(seconds, operation.metric_attributes)

    def answered(self, response: types.GenerateContentResponse) -> None:
        _set_response(self._span, response, usage=True)
        self._operation.count_tokens(response)


class _Operation(Operation):
    __slots__ = (
        "context",
        "first_chunk_at",
        "last",
        "metric_attributes",
        "name",
        "pending_retry",
        "resumptions",
        "span",
        "started",
        "streaming",
        "telemetry",
        "texts",
        "token",
        "totals",
    )

    def __init__(
        self,
        telemetry: _Telemetry,
        name: str,
        model: str,
        request: GenerateRequest | None,
        streaming: bool,
    ) -> None:
        self.telemetry = telemetry
        self.name = name
        self.streaming = streaming
        self.metric_attributes = {
            **telemetry.base,
            "gen_ai.operation.name": name,
            "gen_ai.request.model": model,
        }
        attributes = dict(self.metric_attributes)
        if telemetry.legacy_system is not None:
            attributes["gen_ai.system"] = telemetry.legacy_system
        self.span = telemetry.instruments.tracer.start_span(
            f"{name} {model}" if model else name,
            kind=otel_trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        if request is not None and self.span.is_recording():
            _set_request(self.span, request, telemetry.capture)
        self.context = otel_trace.set_span_in_context(self.span)
        self.pending_retry: tuple[float, str] | None = None
        self.resumptions = 0
        self.first_chunk_at: float | None = None
        self.last: types.GenerateContentResponse | None = None
        self.texts: list[str] | None = [] if telemetry.capture and streaming else None
        self.totals = [0, 0, 0, 0]  # input, output, cached, thinking tokens over the responses
        self.token: object | None = None
        self.started = 0.0

    def __enter__(self) -> Operation:
        if not self.streaming:
            self.token = otel_context.attach(self.context)
        self.started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self.started
        if self.token is not None:
            otel_context.detach(self.token)  # type: ignore[arg-type]
            self.token = None
        span = self.span
        attributes = self.metric_attributes
        if self.last is not None and self.last.model_version:
            attributes = {**attributes, "gen_ai.response.model": self.last.model_version}
        if exc is not None and not isinstance(exc, GeneratorExit):
            _mark_failed(span, exc)
            attributes = {**attributes, "error.type": error_type(exc)}
        self.telemetry.instruments.duration.record(elapsed, attributes)
        if span.is_recording():
            self._finish_span()
        span.end()

    def _finish_span(self) -> None:
        span = self.span
        if self.last is not None:
            _set_response(span, self.last, usage=False)
        input_tokens, output_tokens, cached, thinking = self.totals
        if any(self.totals):
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if cached:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached)
        if thinking:
            span.set_attribute("gen_ai.usage.reasoning.output_tokens", thinking)
        if self.streaming:
            span.set_attribute("greycloud.stream.resumptions", self.resumptions)
        if self.texts is not None:
            reason = _finish_reasons(self.last)[:1] if self.last is not None else []
            span.set_attribute(
                "gen_ai.output.messages",
                genai_messages.output_messages("".join(self.texts), reason[0] if reason else None),
            )

    def attempt(self, number: int) -> Attempt:
        return _Attempt(self, number)

    @contextlib.contextmanager
    def _current(self) -> Iterator[None]:
        token = otel_context.attach(self.context)
        try:
            yield
        finally:
            otel_context.detach(token)

    def current(self) -> contextlib.AbstractContextManager[None]:
        return self._current()

    def retrying(self, delay: float, error: BaseException) -> None:
        reason = describe(error)
        self.pending_retry = (delay, reason)
        self.telemetry.instruments.retries.add(
            1, {**self.metric_attributes, "error.type": error_type(error)}
        )

    def resumed(self) -> None:
        self.resumptions += 1

    def chunk(self, chunk: types.GenerateContentResponse) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()
            waited = self.first_chunk_at - self.started
            self.telemetry.instruments.first_chunk.record(waited, self.metric_attributes)
            self.span.set_attribute("gen_ai.response.time_to_first_chunk", waited)
        if chunk.usage_metadata is not None or chunk.candidates:
            self.last = chunk
        if self.texts is not None:
            self.texts.append(_text(chunk))

    def answered(self, response: types.GenerateContentResponse) -> None:
        self.last = response
        if self.texts is None and self.telemetry.capture and self.span.is_recording():
            reasons = _finish_reasons(response)
            self.span.set_attribute(
                "gen_ai.output.messages",
                genai_messages.output_messages(_text(response), reasons[0] if reasons else None),
            )

    def count_tokens(self, response: types.GenerateContentResponse) -> None:
        """One model response's tokens: into the metric, and into the call's totals."""
        usage = usage_of(response.usage_metadata)
        if usage is None:
            return
        output = usage.output + usage.thinking
        totals = self.totals
        totals[0] += usage.input
        totals[1] += output
        totals[2] += usage.cached
        totals[3] += usage.thinking
        record = self.telemetry.instruments.tokens.record
        attributes = self.metric_attributes
        if response.model_version:
            attributes = {**attributes, "gen_ai.response.model": response.model_version}
        record(usage.input, {**attributes, "gen_ai.token.type": "input"})
        record(output, {**attributes, "gen_ai.token.type": "output"})


def _set_request(span: Any, request: GenerateRequest, capture: bool) -> None:
    config = request.config
    if config is not None:
        for field, attribute in _REQUEST_ATTRIBUTES:
            value = getattr(config, field, None)
            if value is not None:
                span.set_attribute(attribute, value)
    if capture:
        span.set_attribute("gen_ai.input.messages", genai_messages.input_messages(request.contents))
        system = genai_messages.system_instructions(
            config.system_instruction if config is not None else None
        )
        if system is not None:
            span.set_attribute("gen_ai.system_instructions", system)


def _set_response(span: Any, response: types.GenerateContentResponse, *, usage: bool) -> None:
    if not span.is_recording():
        return
    if response.model_version:
        span.set_attribute("gen_ai.response.model", response.model_version)
    if response.response_id:
        span.set_attribute("gen_ai.response.id", response.response_id)
    reasons = _finish_reasons(response)
    if reasons:
        span.set_attribute("gen_ai.response.finish_reasons", reasons)
    tokens = usage_of(response.usage_metadata) if usage else None
    if tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", tokens.input)
        span.set_attribute("gen_ai.usage.output_tokens", tokens.output + tokens.thinking)


def _finish_reasons(response: types.GenerateContentResponse) -> list[str]:
    reasons = []
    for candidate in response.candidates or []:
        reason = candidate.finish_reason
        if reason is not None:
            reasons.append(str(getattr(reason, "value", reason)).lower())
    return reasons


def _text(response: types.GenerateContentResponse) -> str:
    content = response.candidates[0].content if response.candidates else None
    if content is None or not content.parts:
        return ""
    return "".join(p.text for p in content.parts if isinstance(p.text, str) and not p.thought)


def _mark_failed(span: Any, error: BaseException) -> None:
    if span.is_recording():
        span.set_attribute("error.type", error_type(error))
        span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, describe(error)))
