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
SDK and exporters; until it sets a tracer or meter provider, calls get those same do-nothing
hooks. ``GREYCLOUD_OTEL_ATTEMPT_SPANS=retried`` keeps attempt spans for retried or failed
calls only.

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
from ._core.usage import TokenUsage, usage_of

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:
    AVAILABLE = False
else:
    AVAILABLE = True
    # The API's stand-in meter provider, until the application sets one (not a public name: if
    # a later API moves it, the no-op path is merely not skipped).
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        _PROXY_METER_PROVIDERS: tuple[type, ...] = (_ProxyMeterProvider,)
    except ImportError:  # pragma: no cover
        _PROXY_METER_PROVIDERS = ()

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
# "all" (default): a span for every attempt; "retried": only for attempts of calls that were
# retried or failed (a first attempt that succeeds puts its attributes on the call's span).
ATTEMPT_SPANS_ENV = "GREYCLOUD_OTEL_ATTEMPT_SPANS"

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

    def embedded(self, input_tokens: int) -> None:
        """The attempt got its embeddings, for ``input_tokens`` tokens of input."""


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
        return NO_OPERATION

    def rate_limited(self, model: str) -> None:
        """The server answered 429 for ``model``."""


_NO_ATTEMPT = Attempt()
NO_OPERATION = Operation()
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
        # Whether a tracer / meter provider is set. Without a meter provider every measurement
        # goes to the API's no-op instruments, so none is made (see ``active``).
        self.tracing = False
        self.metering = False
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

    def active(self) -> bool:
        """False while the application has set neither a tracer nor a meter provider: then
        every span and measurement would go to the API's no-op objects. A provider, once set,
        stays (the API refuses to replace it), so the question is asked until both are."""
        if not (self.tracing and self.metering):
            tracing = otel_trace.get_tracer_provider()
            self.tracing = not isinstance(tracing, otel_trace.ProxyTracerProvider)
            metering = otel_metrics.get_meter_provider()
            self.metering = not isinstance(metering, _PROXY_METER_PROVIDERS)
        return self.tracing or self.metering

    def watch(self, limiter: WatchedLimiter) -> None:
        self._limiters.add(limiter)

    def _per_model(self, figure: str) -> Iterable[Any]:
        """``figure`` of ``ModelStats`` per model, added up over this process's limiters."""
        totals: dict[str, float] = {}
        for limiter in list(self._limiters):
            for model, stats in limiter.stats().models.items():
                totals[model] = totals.get(model, 0.0) + getattr(stats, figure)
        return [
            otel_metrics.Observation(value, {"gen_ai.request.model": model})
            for model, value in totals.items()
        ]

    def _observe_rates(self, options: Any) -> Iterable[Any]:
        return self._per_model("rpm")

    def _observe_in_flight(self, options: Any) -> Iterable[Any]:
        return self._per_model("in_flight")


class _Kind:
    """What every call of one operation on one model shares: its span name and attribute sets
    (made once, so a call builds no dicts for them)."""

    __slots__ = ("input_tokens", "metric", "model_only", "output_tokens", "span", "span_name")

    def __init__(self, telemetry: _Telemetry, name: str, model: str) -> None:
        self.span_name = f"{name} {model}" if model else name
        # Metrics carry few attributes: the SDK's cost per measurement grows with their number.
        self.metric = {
            "gen_ai.operation.name": name,
            "gen_ai.provider.name": telemetry.provider,
            "gen_ai.request.model": model,
        }
        self.input_tokens = {**self.metric, "gen_ai.token.type": "input"}
        self.output_tokens = {**self.metric, "gen_ai.token.type": "output"}
        self.model_only = {"gen_ai.request.model": model}
        self.span = {**telemetry.base, **self.metric}
        if telemetry.legacy_system is not None:
            self.span["gen_ai.system"] = telemetry.legacy_system


class _Telemetry(Telemetry):
    __slots__ = (
        "base",
        "capture",
        "every_attempt",
        "instruments",
        "kinds",
        "legacy_system",
        "provider",
    )

    def __init__(
        self, provider: str, address: str, port: int | None, instruments: _Instruments
    ) -> None:
        opt_in = {v.strip() for v in os.environ.get(STABILITY_ENV, "").split(",")}
        latest = LATEST_EXPERIMENTAL in opt_in
        capture = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().upper()
        self.capture = capture in ({"SPAN_ONLY", "SPAN_AND_EVENT"} if latest else {"TRUE", "1"})
        attempts = os.environ.get(ATTEMPT_SPANS_ENV, "all").strip().lower()
        self.every_attempt = attempts != "retried"
        self.instruments = instruments
        self.provider = provider
        base: dict[str, Any] = {"server.address": address}
        if port is not None:
            base["server.port"] = port
        self.base = base
        self.legacy_system = None if latest else provider
        self.kinds: dict[tuple[str, str], _Kind] = {}

    def operation(
        self,
        name: str,
        model: str,
        request: GenerateRequest | None = None,
        *,
        streaming: bool = False,
    ) -> Operation:
        if not self.instruments.active():
            return NO_OPERATION  # no SDK yet: skip even the API's no-op spans
        kind = self.kinds.get((name, model))
        if kind is None:
            kind = self.kinds[name, model] = _Kind(self, name, model)
        return _Operation(self, kind, request, streaming)

    def rate_limited(self, model: str) -> None:
        if not (self.instruments.active() and self.instruments.metering):
            return
        attributes = {"gen_ai.provider.name": self.provider, "gen_ai.request.model": model}
        self.instruments.rate_limited.add(1, attributes)


class _Attempt(Attempt):
    # Attributes are gathered and set in one call when the span ends: each set_attribute of the
    # SDK takes a lock, and this runs on every request. The span is started on entering, next
    # to the call's own span, while the SDK's code is still in the CPU caches (made at the
    # attempt's end instead, after the request has evicted it, it measured no cheaper).
    # Not made current: what runs inside an attempt is the SDK's request, and the call's span
    # (current outside streams) is the parent that matters to the caller's own spans.
    __slots__ = ("_attributes", "_number", "_operation", "_span", "_started")

    def __init__(self, operation: _Operation, number: int) -> None:
        self._operation = operation
        self._number = number
        self._span: Any = None
        self._started = 0
        self._attributes: dict[str, Any] = {}

    def __enter__(self) -> Attempt:
        """Start the attempt (on entering: an attempt that never starts leaves no span)."""
        operation = self._operation
        attributes = self._attributes
        attributes["greycloud.attempt"] = self._number
        if operation.pending_retry is not None:
            delay, reason = operation.pending_retry
            operation.pending_retry = None
            attributes["greycloud.retry.delay"] = delay
            attributes["greycloud.retry.reason"] = reason
        if operation.telemetry.every_attempt:
            self._span = operation.telemetry.instruments.tracer.start_span(
                ATTEMPT_SPAN, context=operation.context, kind=otel_trace.SpanKind.CLIENT
            )
        else:  # the span is made at the end, and only for a retry or a failure
            self._started = time.time_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = exc is not None and not isinstance(exc, GeneratorExit)
        span = self._span
        if span is None:
            if not failed and self._number == 1:
                self._operation.absorb(self._attributes)
                return
            span = self._operation.telemetry.instruments.tracer.start_span(
                ATTEMPT_SPAN,
                context=self._operation.context,
                kind=otel_trace.SpanKind.CLIENT,
                start_time=self._started,
            )
        if failed:
            assert exc is not None
            _mark_failed(span, exc, self._attributes)
        span.set_attributes(self._attributes)
        span.end()

    def waited(self, seconds: float) -> None:
        self._attributes["greycloud.limiter.wait"] = seconds
        operation = self._operation
        instruments = operation.telemetry.instruments
        if seconds > 0 and instruments.metering:  # most attempts start at once: no record
            instruments.limiter_wait.record(seconds, operation.kind.model_only)

    def answered(self, response: types.GenerateContentResponse) -> None:
        # The answer's attributes and tokens go on the call's span (summed over hops).
        usage = usage_of(response.usage_metadata)
        if usage is not None:
            self._operation.count_tokens(usage)

    def embedded(self, input_tokens: int) -> None:
        self._operation.count_tokens(TokenUsage(responses=1, input=input_tokens), output=False)


class _Operation(Operation):
    __slots__ = (
        "absorbed",
        "context",
        "first_chunk_at",
        "kind",
        "last",
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
        kind: _Kind,
        request: GenerateRequest | None,
        streaming: bool,
    ) -> None:
        self.telemetry = telemetry
        self.kind = kind
        self.streaming = streaming
        attributes = kind.span
        if request is not None:
            attributes = _request_attributes(attributes, request, telemetry.capture)
        self.span = telemetry.instruments.tracer.start_span(
            kind.span_name, kind=otel_trace.SpanKind.CLIENT, attributes=attributes
        )
        self.context = otel_trace.set_span_in_context(self.span)
        self.pending_retry: tuple[float, str] | None = None
        self.resumptions = 0
        self.first_chunk_at: float | None = None
        self.last: types.GenerateContentResponse | None = None
        self.texts: list[str] | None = [] if telemetry.capture and streaming else None
        self.totals = [0, 0, 0, 0]  # input, output, cached, thinking tokens over the responses
        self.token: object | None = None
        self.started = 0.0
        self.absorbed: dict[str, Any] | None = None

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
        metric = self.kind.metric
        attributes: dict[str, Any] = {}
        if exc is not None and not isinstance(exc, GeneratorExit):
            _mark_failed(span, exc, attributes)
            metric = {**metric, "error.type": attributes["error.type"]}
        instruments = self.telemetry.instruments
        if instruments.metering:
            instruments.duration.record(elapsed, metric)
        if span.is_recording():
            self._finish(attributes)
            span.set_attributes(attributes)
        span.end()

    def _finish(self, attributes: dict[str, Any]) -> None:
        """The call's own attributes, gathered at its end."""
        if self.absorbed is not None:
            attributes.update(self.absorbed)
        if self.last is not None:
            _response_attributes(attributes, self.last)
        input_tokens, output_tokens, cached, thinking = self.totals
        if any(self.totals):
            attributes["gen_ai.usage.input_tokens"] = input_tokens
            attributes["gen_ai.usage.output_tokens"] = output_tokens
        if cached:
            attributes["gen_ai.usage.cache_read.input_tokens"] = cached
        if thinking:
            attributes["gen_ai.usage.reasoning.output_tokens"] = thinking
        if self.first_chunk_at is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = self.first_chunk_at - self.started
        if self.streaming:
            attributes["greycloud.stream.resumptions"] = self.resumptions
        if self.telemetry.capture:
            if self.texts is not None:
                text = "".join(self.texts)
            else:
                text = _text(self.last) if self.last is not None else ""
            reasons = _finish_reasons(self.last) if self.last is not None else []
            attributes["gen_ai.output.messages"] = genai_messages.output_messages(
                text, reasons[0] if reasons else None
            )

    def attempt(self, number: int) -> Attempt:
        return _Attempt(self, number)

    def absorb(self, attempt_attributes: dict[str, Any]) -> None:
        """A first attempt that got its answer, without a span of its own: its attributes go
        on the call's span (limiter waits of several hops added up)."""
        absorbed = self.absorbed
        if absorbed is None:
            self.absorbed = dict(attempt_attributes)
            return
        wait = absorbed.get("greycloud.limiter.wait", 0.0)
        absorbed.update(attempt_attributes)
        absorbed["greycloud.limiter.wait"] = wait + attempt_attributes.get(
            "greycloud.limiter.wait", 0.0
        )

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
        self.pending_retry = (delay, describe(error))
        instruments = self.telemetry.instruments
        if instruments.metering:
            instruments.retries.add(1, {**self.kind.metric, "error.type": error_type(error)})

    def resumed(self) -> None:
        self.resumptions += 1

    def chunk(self, chunk: types.GenerateContentResponse) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()
            instruments = self.telemetry.instruments
            if instruments.metering:
                waited = self.first_chunk_at - self.started
                instruments.first_chunk.record(waited, self.kind.metric)
        if chunk.usage_metadata is not None or chunk.candidates:
            self.last = chunk
        if self.texts is not None:
            self.texts.append(_text(chunk))

    def answered(self, response: types.GenerateContentResponse) -> None:
        self.last = response

    def count_tokens(self, usage: TokenUsage, *, output: bool = True) -> None:
        """One model response's tokens: into the metric, and into the call's totals (no
        output-token measurement unless ``output``: embeddings have none)."""
        output_tokens = usage.output + usage.thinking
        totals = self.totals
        totals[0] += usage.input
        totals[1] += output_tokens
        totals[2] += usage.cached
        totals[3] += usage.thinking
        instruments = self.telemetry.instruments
        if not instruments.metering:
            return
        record = instruments.tokens.record
        record(usage.input, self.kind.input_tokens)
        if output:
            record(output_tokens, self.kind.output_tokens)


def _request_attributes(
    shared: dict[str, Any], request: GenerateRequest, capture: bool
) -> dict[str, Any]:
    """``shared`` and the request's own attributes (``shared`` itself when it has none)."""
    config = request.config
    if config is None and not capture:
        return shared
    attributes = dict(shared)
    if config is not None:
        for field, attribute in _REQUEST_ATTRIBUTES:
            value = getattr(config, field, None)
            if value is not None:
                attributes[attribute] = value
    if capture:
        attributes["gen_ai.input.messages"] = genai_messages.input_messages(request.contents)
        system = genai_messages.system_instructions(
            config.system_instruction if config is not None else None
        )
        if system is not None:
            attributes["gen_ai.system_instructions"] = system
    return attributes


def _response_attributes(
    attributes: dict[str, Any], response: types.GenerateContentResponse
) -> None:
    if response.model_version:
        attributes["gen_ai.response.model"] = response.model_version
    if response.response_id:
        attributes["gen_ai.response.id"] = response.response_id
    reasons = _finish_reasons(response)
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons


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


def _mark_failed(span: Any, error: BaseException, attributes: dict[str, Any]) -> None:
    attributes["error.type"] = error_type(error)
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, describe(error)))
