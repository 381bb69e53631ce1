"""Apache Beam ``RunInference`` with greycloud's client: one shared quota across every worker.

    from apache_beam.ml.inference.base import RunInference
    from greycloud.beam import GreyCloudModelHandler, SplitFailures

    answered, failed = (
        prompts
        | RunInference(GreyCloudModelHandler(config, max_batch_size=32))
        | SplitFailures()
    )

Each worker process builds one client in ``load_model``; with ``rate_limit_storage`` set to a
Redis URL (Memorystore on Dataflow) every worker books the same quota, so the service is never
asked for more than it grants. The elements of a batch run concurrently under the limiter, each
retried by greycloud's rules. An element that fails for good becomes a ``PredictionResult``
whose ``inference`` is a :class:`Failure`; ``SplitFailures`` routes those to a dead-letter
output, so one bad element never fails its bundle. Needs the ``beam`` extra.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from ._extras import missing_extra

try:
    import apache_beam as beam
    from apache_beam.metrics.metric import Metrics
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult
    from apache_beam.pvalue import PCollection, TaggedOutput
except ImportError as exc:
    raise ModuleNotFoundError(
        missing_extra("greycloud.beam", "beam", exc.name), name=exc.name
    ) from None

import google.auth.exceptions
from google.genai import types

from . import auth
from ._cli.prompts import check_line
from ._cli.results import TokenUsage, error_json, finish_reason, is_rate_limited
from ._core.request import build_request
from ._core.retry import worth_splitting
from ._sync.client import DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, GreyCloudClient
from ._sync.rate_limiter import SyncVertexRateLimiter
from .config import GreyCloudConfig
from .errors import AuthError, ConfigError, QuotaExhaustedError

__all__ = [
    "Answer",
    "Embedding",
    "Failure",
    "GreyCloudEmbeddingHandler",
    "GreyCloudModelHandler",
    "HandlerOptions",
    "SplitFailures",
]

# Seconds between a booked start and its arrival at the service that a worker allows for.
CLOCK_MARGIN = 1.0
# Errors every later element would hit too (no credentials, a per-day quota spent): they fail
# the batch, as Beam expects of a broken model, instead of sending each element to the
# dead-letter output. RunInference(...).with_exception_handling() catches them if wanted.
STOPPING_ERRORS = (AuthError, QuotaExhaustedError, google.auth.exceptions.RefreshError)
METRICS_NAMESPACE = "greycloud"
# The type of a failure for an element that was never sent because it is not a valid prompt.
INVALID_PROMPT = "InvalidPrompt"
# The keyword arguments of a generate call that are not GenerateContentConfig fields.
_CALL_ARGUMENTS = frozenset(inspect.signature(build_request).parameters) - {
    "config",
    "contents",
    "extra",
}


@dataclass(frozen=True)
class Answer:
    """The ``inference`` of an element that was answered.

    ``parsed`` is the structured answer when a ``response_schema`` was given (else None);
    ``attempts`` counts the calls it took (1 when no retry was needed); ``response`` is the
    whole ``GenerateContentResponse``.
    """

    text: str
    parsed: Any
    usage: TokenUsage
    finish_reason: str | None
    model: str
    attempts: int
    response: types.GenerateContentResponse

    ok = True


@dataclass(frozen=True)
class Failure:
    """The ``inference`` of an element that failed for good (its dead-letter record).

    ``type`` is the error's class name (``InvalidPrompt`` when the element was never sent),
    ``message`` what went wrong, with the server's own message for a service error, and
    ``code`` the HTTP status of that error (None otherwise).
    """

    type: str
    message: str
    code: int | None
    model: str
    attempts: int

    ok = False

    @classmethod
    def of(cls, exc: BaseException, model: str, attempts: int) -> Failure:
        error = error_json(exc)
        return cls(error["type"], error["message"], error.get("code"), model, attempts)


@dataclass(frozen=True)
class Embedding:
    """The ``inference`` of an element that was embedded: its vector and what the service said
    of it (``truncated``, ``token_count``: None when it does not say)."""

    values: list[float]
    truncated: bool | None
    token_count: int | None
    model: str
    attempts: int

    ok = True


Inference = Answer | Failure


class HandlerOptions(TypedDict, total=False):
    """The options every greycloud handler takes (see ``GreyCloudModelHandler``)."""

    credentials: auth.Credentials | None
    max_retries: int
    base_delay: float
    max_delay: float
    clock_margin: float
    min_batch_size: int | None
    max_batch_size: int | None
    max_batch_duration_secs: int | None
    max_batch_weight: int | None
    element_size_fn: Callable[[Any], int] | None


@dataclass(frozen=True)
class _Request:
    """What one element asks for, or why it cannot be sent."""

    contents: Any = None
    kwargs: Mapping[str, Any] | None = None
    problem: str | None = None


def request_of(element: Any) -> _Request:
    """How an element is sent: a string or a list of contents as they are, a dict as a line of
    ``greycloud run``'s input (its id and metadata stay with the element, in ``example``)."""
    if isinstance(element, str):
        if not element.strip():
            return _Request(problem="the prompt is an empty string")
        return _Request(element, {})
    if isinstance(element, (types.Content, types.Part)):
        return _Request([element], {})
    if isinstance(element, list):
        if not element:
            return _Request(problem="the contents list is empty")
        return _Request(element, {})
    if isinstance(element, Mapping):
        line, problems = check_line(0, dict(element))
        if line is None or problems:
            return _Request(problem="; ".join(problems))
        kwargs = {"model": line.model, "system_instruction": line.system_instruction}
        return _Request(line.contents, {**kwargs, **line.settings})
    return _Request(
        problem=f"cannot send a {type(element).__name__}; give a prompt string, a list of "
        "Content objects, or a dict in the format of greycloud run's input lines"
    )


class _Worker:
    """One worker's client and the threads that run a batch's elements side by side.

    Measured (bench/RESULTS.md): at 64 calls in flight the sync client on a thread pool finished
    a batch in half the time the async client on a private event loop took; at 16, 0.8 of it.
    Beam calls ``run_inference`` from several threads at once; they share the pool.
    """

    def __init__(
        self, config: GreyCloudConfig, credentials: auth.Credentials | None, clock_margin: float
    ) -> None:
        self.limiter = SyncVertexRateLimiter.from_config(config, clock_margin=clock_margin)
        self.client = GreyCloudClient(config, credentials=credentials, rate_limiter=self.limiter)
        self.pool = ThreadPoolExecutor(_most_in_flight(config), thread_name_prefix="greycloud")
        weakref.finalize(self, _shut_down, self.client, self.limiter, self.pool)

    def close(self) -> None:
        _shut_down(self.client, self.limiter, self.pool)


def _most_in_flight(config: GreyCloudConfig) -> int:
    """The largest concurrency the limits allow for any model (the limiter enforces each)."""
    per_model = [limits.get("max_concurrency") for limits in (config.model_limits or {}).values()]
    return max([config.max_concurrency, *(n for n in per_model if isinstance(n, int))])


def _shut_down(
    client: GreyCloudClient, limiter: SyncVertexRateLimiter, pool: ThreadPoolExecutor
) -> None:
    pool.shutdown(wait=True, cancel_futures=True)
    client.close()
    limiter.close()


class _Handler(ModelHandler[Any, PredictionResult, _Worker]):
    """What greycloud's handlers share: the config, the worker's client, retries, batching."""

    def __init__(
        self,
        config: GreyCloudConfig | None = None,
        *,
        credentials: auth.Credentials | None = None,
        max_retries: int = 5,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock_margin: float = CLOCK_MARGIN,
        min_batch_size: int | None = None,
        max_batch_size: int | None = None,
        max_batch_duration_secs: int | None = None,
        max_batch_weight: int | None = None,
        element_size_fn: Callable[[Any], int] | None = None,
    ) -> None:
        super().__init__()
        batching = {
            "min_batch_size": min_batch_size,
            "max_batch_size": max_batch_size,
            "max_batch_duration_secs": max_batch_duration_secs,
            "max_batch_weight": max_batch_weight,
            "element_size_fn": element_size_fn,
        }
        self._batching = {key: value for key, value in batching.items() if value is not None}
        if max_retries < 0:
            raise ConfigError("max_retries", f"must be 0 or more, got {max_retries}")
        self.config = config if config is not None else GreyCloudConfig()
        self._credentials = credentials
        self._max_retries = max_retries
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._clock_margin = clock_margin
        self._counters = {
            name: Metrics.counter(METRICS_NAMESPACE, name)
            for name in ("answered", "failed", "retries", "rate_limited")
        }

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        return self._batching

    def load_model(self) -> _Worker:
        return _Worker(self.config, self._credentials, self._clock_margin)

    def get_metrics_namespace(self) -> str:
        return type(self).__name__

    def _count(self, inference: Answer | Embedding | Failure, rate_limited: int) -> None:
        # Counted in Beam's thread: Beam's counters belong to the thread of the bundle.
        self._counters["answered" if inference.ok else "failed"].inc()
        self._counters["retries"].inc(max(0, inference.attempts - 1))
        self._counters["rate_limited"].inc(rate_limited)


class GreyCloudModelHandler(_Handler):
    """A ``RunInference`` model handler that generates content with greycloud's client.

    Elements: prompt strings, lists of ``Content`` (or parts, or their dicts), or dicts in the
    format of ``greycloud run``'s input lines (``id``, ``prompt`` or ``contents``, ``model``,
    ``system_instruction``, generation settings, ``metadata``). Every element comes out as one
    ``PredictionResult(example, inference, model_id)`` whose ``inference`` is an
    :class:`Answer` or, when it failed for good, a :class:`Failure` (see ``SplitFailures``).

    ``config`` is pickled into the pipeline and used by every worker: set
    ``rate_limit_storage`` to a Redis URL that all workers reach so they share the quota (an
    in-memory limiter keeps each worker to the whole quota on its own). Whatever it holds
    travels with the job, an ``api_key`` or ``access_token`` included: on Dataflow leave them
    out and let the workers authenticate as the job's service account. ``credentials``
    (picklable google-auth credentials) are optional; without them each worker finds its own
    (the worker's service account on Dataflow). ``generate_kwargs`` (e.g. ``temperature``,
    ``response_mime_type``, ``response_schema``) apply to every element; RunInference's
    ``inference_args`` and a dict element's own settings win over them.

    ``max_retries``, ``base_delay`` and ``max_delay`` are ``generate_with_retry``'s;
    ``clock_margin`` the limiter's allowance, in seconds, between a booked start and the
    request's arrival at the service (a worker busy with its bundles needs more than a
    lone process). The batching knobs are Beam's own (``beam.BatchElements``); the elements of
    a batch run concurrently, at most ``max_concurrency`` of the config per worker at once.
    Beam counters in namespace ``greycloud``: ``answered``, ``failed``, ``retries``,
    ``rate_limited``.
    """

    def __init__(
        self,
        config: GreyCloudConfig | None = None,
        *,
        credentials: auth.Credentials | None = None,
        max_retries: int = 5,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock_margin: float = CLOCK_MARGIN,
        min_batch_size: int | None = None,
        max_batch_size: int | None = None,
        max_batch_duration_secs: int | None = None,
        max_batch_weight: int | None = None,
        element_size_fn: Callable[[Any], int] | None = None,
        **generate_kwargs: Any,
    ) -> None:
        super().__init__(
            config,
            credentials=credentials,
            max_retries=max_retries,
            base_delay=base_delay,
            max_delay=max_delay,
            clock_margin=clock_margin,
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            max_batch_duration_secs=max_batch_duration_secs,
            max_batch_weight=max_batch_weight,
            element_size_fn=element_size_fn,
        )
        check_generate_kwargs(self.config, generate_kwargs, "generate_kwargs")
        self._generate_kwargs = generate_kwargs

    def validate_inference_args(self, inference_args: dict[str, Any] | None) -> None:
        check_generate_kwargs(self.config, inference_args or {}, "inference_args")

    def run_inference(
        self,
        batch: Sequence[Any],
        model: _Worker,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        """One ``PredictionResult`` per element, in order; raises only a ``STOPPING_ERRORS``."""
        defaults = {**self._generate_kwargs, **(inference_args or {})}
        futures = [model.pool.submit(self._infer, model.client, e, defaults) for e in batch]
        try:
            outcomes = [future.result() for future in futures]
        finally:
            for future in futures:  # after a stopping error, start nothing more
                future.cancel()
        results = []
        for element, (inference, rate_limited) in zip(batch, outcomes, strict=True):
            self._count(inference, rate_limited)
            results.append(PredictionResult(element, inference, inference.model))
        return results

    def _infer(
        self, client: GreyCloudClient, element: Any, defaults: dict[str, Any]
    ) -> tuple[Inference, int]:
        """The element's inference, and how many of its attempts were refused with 429."""
        request = request_of(element)
        kwargs = {**defaults, **{k: v for k, v in (request.kwargs or {}).items() if v is not None}}
        model = kwargs.get("model") or client.config.model
        if request.problem is not None:
            return Failure(INVALID_PROMPT, request.problem, None, model, 0), 0
        failed_attempts = rate_limited = 0

        def on_retry(attempt: int, error: BaseException, delay: float) -> None:
            nonlocal failed_attempts, rate_limited
            failed_attempts = attempt
            rate_limited += is_rate_limited(error)

        try:
            response = client.generate_with_retry(
                request.contents,
                max_retries=self._max_retries,
                base_delay=self._base_delay,
                max_delay=self._max_delay,
                on_retry=on_retry,
                **kwargs,
            )
        except STOPPING_ERRORS:
            raise
        except Exception as exc:  # this element's failure alone: its dead-letter record
            rate_limited += is_rate_limited(exc)
            return Failure.of(exc, model, failed_attempts + 1), rate_limited
        answer = Answer(
            text=response.text or "",
            parsed=response.parsed,
            usage=TokenUsage.of(response.usage_metadata),
            finish_reason=finish_reason(response),
            model=model,
            attempts=failed_attempts + 1,
            response=response,
        )
        return answer, rate_limited


class GreyCloudEmbeddingHandler(_Handler):
    """A ``RunInference`` model handler that embeds each element with ``embed_content``.

    Elements: texts, ``Part`` or ``Content`` objects (or their dicts). Every element comes out
    as one ``PredictionResult`` whose ``inference`` is an :class:`Embedding` or a
    :class:`Failure`. A batch is one ``embed_content`` call (greycloud splits it into as few
    requests as the model's per-request limits allow, each under the limiter); when that call
    fails for good, each element is tried alone, so that only the elements the service refuses
    become failures. ``model`` defaults to the config's ``embedding_model``; ``task_type``,
    ``output_dimensionality``, ``title`` and ``auto_truncate`` are ``embed_content``'s, and
    RunInference's ``inference_args`` may set them per pipeline. The other options and the
    counters are those of ``GreyCloudModelHandler``.
    """

    def __init__(
        self,
        config: GreyCloudConfig | None = None,
        *,
        model: str | None = None,
        task_type: str | None = None,
        output_dimensionality: int | None = None,
        title: str | None = None,
        auto_truncate: bool | None = None,
        **options: Unpack[HandlerOptions],
    ) -> None:
        super().__init__(config, **options)
        self._model = model or self.config.embedding_model
        self._embed_kwargs: dict[str, Any] = {
            "task_type": task_type,
            "output_dimensionality": output_dimensionality,
            "title": title,
            "auto_truncate": auto_truncate,
        }

    def validate_inference_args(self, inference_args: dict[str, Any] | None) -> None:
        unknown = sorted(set(inference_args or {}) - set(self._embed_kwargs))
        if unknown:
            raise ConfigError(
                "inference_args",
                f"unknown {', '.join(unknown)}; embeddings take {', '.join(self._embed_kwargs)}",
            )

    def run_inference(
        self,
        batch: Sequence[Any],
        model: _Worker,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        """One ``PredictionResult`` per element, in order; raises only a ``STOPPING_ERRORS``."""
        kwargs = {**self._embed_kwargs, **(inference_args or {})}
        outcomes: dict[int, tuple[Embedding | Failure, int]] = {}
        sendable = []
        for index, element in enumerate(batch):
            if isinstance(element, (str, types.Part, types.Content, Mapping)) and element:
                sendable.append(index)
            else:
                problem = f"cannot embed {element!r:.40}; give a non-empty text, Part or Content"
                outcomes[index] = Failure(INVALID_PROMPT, problem, None, self._model, 0), 0
        whole = self._embed(model.client, [batch[i] for i in sendable], kwargs)
        if isinstance(whole, list):
            outcomes.update(zip(sendable, whole, strict=True))
        elif len(sendable) > 1 and whole[2]:
            # One bad element may have failed the call: alone, each fails or succeeds.
            alone = [
                model.pool.submit(self._embed, model.client, [batch[i]], kwargs) for i in sendable
            ]
            for index, future in zip(sendable, alone, strict=True):
                result = future.result()
                outcomes[index] = result[0] if isinstance(result, list) else result[:2]
        else:  # the service was busy or failing: more requests would not help
            outcomes.update((index, whole[:2]) for index in sendable)
        results = []
        for index, element in enumerate(batch):
            inference, rate_limited = outcomes[index]
            self._count(inference, rate_limited)
            results.append(PredictionResult(element, inference, inference.model))
        return results

    def _embed(
        self, client: GreyCloudClient, contents: list[Any], kwargs: dict[str, Any]
    ) -> list[tuple[Embedding, int]] | tuple[Failure, int, bool]:
        """Each content's embedding (with the 429s met, counted on the first), or the failure
        of the whole call, its 429s, and whether sending the contents alone may get further."""
        if not contents:
            return []
        failed_attempts = rate_limited = 0

        def on_retry(attempt: int, error: BaseException, delay: float) -> None:
            nonlocal failed_attempts, rate_limited
            failed_attempts = max(failed_attempts, attempt)
            rate_limited += is_rate_limited(error)

        try:
            response = client.embed_content(
                contents,
                self._model,
                max_retries=self._max_retries,
                on_retry=on_retry,
                **kwargs,
            )
        except STOPPING_ERRORS:
            raise
        except Exception as exc:  # refused as a whole; run_inference tries each alone
            rate_limited += is_rate_limited(exc)
            failure = Failure.of(exc, self._model, failed_attempts + 1)
            return failure, rate_limited, worth_splitting(exc)
        embeddings = []
        for position, embedding in enumerate(response.embeddings or []):
            statistics = embedding.statistics
            token_count = None if statistics is None else statistics.token_count
            found = Embedding(
                values=list(embedding.values or []),
                truncated=None if statistics is None else statistics.truncated,
                token_count=None if token_count is None else int(token_count),
                model=self._model,
                attempts=failed_attempts + 1,
            )
            embeddings.append((found, rate_limited if position == 0 else 0))
        return embeddings


def check_generate_kwargs(config: GreyCloudConfig, kwargs: Mapping[str, Any], where: str) -> None:
    """Raise ``ConfigError`` now (at pipeline construction) for a setting no call could send."""
    call = {key: value for key, value in kwargs.items() if key in _CALL_ARGUMENTS}
    extra = {key: value for key, value in kwargs.items() if key not in _CALL_ARGUMENTS}
    try:
        build_request(config, "check", **call, extra=extra)
    except ConfigError as exc:
        raise ConfigError(where, str(exc)) from None
    except TypeError as exc:
        raise ConfigError(where, f"{exc}; use the keyword arguments of generate_content") from None


FAILED_TAG = "failed"


class _RouteFailures(beam.DoFn):
    def process(self, element: Any) -> Iterator[Any]:
        result = element
        if not isinstance(result, PredictionResult) and isinstance(result, tuple):
            result = result[-1]  # (key, PredictionResult) from a KeyedModelHandler
        if isinstance(result, PredictionResult) and isinstance(result.inference, Failure):
            yield TaggedOutput(FAILED_TAG, element)
        else:
            yield element


class SplitFailures(beam.PTransform[PCollection[Any], tuple[PCollection[Any], PCollection[Any]]]):
    """``answered, failed = results | SplitFailures()``: the dead-letter output.

    ``failed`` holds the ``PredictionResult`` (or ``(key, PredictionResult)``) of every element
    whose ``inference`` is a :class:`Failure`: the element as given and why it failed.
    """

    def expand(self, results: PCollection[Any]) -> tuple[PCollection[Any], PCollection[Any]]:
        routed = results | "RouteFailures" >> beam.ParDo(_RouteFailures()).with_outputs(
            FAILED_TAG, main="answered"
        )
        return routed["answered"], routed[FAILED_TAG]
