"""The emulator's shared state and the statistics it keeps.

One :class:`EmulatorState` is shared by the server (on its event-loop thread) and the
``VertexEmulator`` facade (on the test's thread). Quota windows and counters change together
under one lock; everything else is either append-only or has its own lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._answers import Answer, make_answer, prompt_details, response_json
from ._auth import TokenStore
from ._batch_runner import BatchRunner
from ._capacity import CapacityBook, CapacityLike, CapacitySchedule, SecondStats
from ._faults import FaultQueue
from ._quota import QuotaBook, Refusal
from ._records import RequestRecord
from ._resources import BatchStore, CacheStore, Timeline
from ._rpc import ResourceError
from ._search import SearchIndex
from ._structured import FunctionScript

Responder = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class ModelStats:
    """Counts for one model since the last reset.

    ``accepted``: generate calls (streaming or not) and embedding requests answered.
    ``rejected``: calls refused with 429, by the quota or by an injected 429 fault.
    ``faulted``: calls that got any other injected fault. ``peak_rpm`` / ``peak_tpm``: the
    most requests / input tokens admitted within any rolling 60-second window.
    ``prompt_tokens`` / ``output_tokens``: totals of the accepted calls (output counts
    candidates and thoughts).
    """

    accepted: int = 0
    rejected: int = 0
    faulted: int = 0
    peak_rpm: int = 0
    peak_tpm: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    seconds: tuple[SecondStats, ...] = ()
    """Capacity mode only: per second of the run, the pool's capacity and the calls it
    served (goodput) and refused with 429."""


@dataclass(frozen=True)
class EmulatorStats:
    """``VertexEmulator.stats()``: per-model :class:`ModelStats` and totals over all models.

    ``stats["gemini-2.5-flash"]`` returns that model's counts (zeros for an unseen model).
    """

    models: dict[str, ModelStats] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    faulted: int = 0

    def __getitem__(self, model: str) -> ModelStats:
        return self.models.get(model, ModelStats())


class _Counters:
    __slots__ = ("accepted", "faulted", "output_tokens", "prompt_tokens", "rejected")

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.faulted = 0
        self.prompt_tokens = 0
        self.output_tokens = 0


class EmulatorState:
    """Everything the server consults per request; the facade changes it between requests."""

    def __init__(
        self,
        *,
        project: str,
        location: str,
        rpm: int | None,
        tpm: int | None,
        model_quotas: dict[str, dict[str, int | None]] | None,
        latency: float,
        event_delay: float,
        clock: Callable[[], float],
        batch_step: float,
        max_records: int | None,
        accept_any_token: bool,
        capacity: CapacityLike | dict[str, CapacityLike] | None = None,
        capacity_schedule: CapacitySchedule | None = None,
        capacity_burst: float = 1.0,
    ) -> None:
        self.project = project
        self.location = location
        self.latency = latency
        self.event_delay = event_delay
        self.clock = clock
        self.timeline = Timeline(clock)
        self.tokens = TokenStore(accept_any_token=accept_any_token)
        self.faults = FaultQueue()
        self.records: deque[RequestRecord] = deque(maxlen=max_records)
        self.caches = CacheStore(self.timeline)
        self.batches = BatchStore(self.timeline, batch_step)
        # Where batch jobs read and write Cloud Storage (None: STORAGE_EMULATOR_HOST, if set).
        self.gcs_endpoint: str | None = None
        self.batches.runner = BatchRunner(
            self.answer_request,
            lambda: self.gcs_endpoint,
        )
        self.search = SearchIndex()
        self.responder: Responder | None = None
        self.scripted: dict[str | None, str] = {}
        self.function_scripts: dict[str | None, FunctionScript] = {}
        self._initial_quotas = (rpm, tpm, model_quotas)
        self.lock = threading.Lock()
        self.quotas = QuotaBook(rpm, tpm, model_quotas)
        self._initial_capacity = (capacity, list(capacity_schedule or ()), capacity_burst)
        self.capacity = CapacityBook(capacity, capacity_schedule, capacity_burst, clock())
        self._counters: dict[str, _Counters] = {}
        self._serial = 0

    # -- per request (server thread) ---------------------------------------------------------

    def _counter(self, model: str) -> _Counters:
        counters = self._counters.get(model)
        if counters is None:
            counters = self._counters[model] = _Counters()
        return counters

    def admit(self, project: str, model: str, tokens: int) -> Refusal | bool | None:
        """Book a generate or embedding call in its quota window (None), or say why it is
        refused: the quota's ``Refusal``, or False when the capacity-mode pool is busy (both
        counted)."""
        with self.lock:
            now = self.clock()
            refusal: Refusal | bool | None = self.quotas.try_admit(project, model, now, tokens)
            if refusal is None and self.capacity.active:
                refusal = None if self.capacity.try_admit(model, now, tokens) else False
            counters = self._counter(model)
            if refusal is None:
                counters.accepted += 1
            else:
                counters.rejected += 1
            return refusal

    def count_answer(self, model: str, answer: Answer) -> None:
        with self.lock:
            counters = self._counter(model)
            counters.prompt_tokens += answer.prompt_tokens
            counters.output_tokens += answer.candidates_tokens + answer.thoughts_tokens

    def count_prompt_tokens(self, model: str, tokens: int) -> None:
        """Input tokens of an accepted call that has no output (an embedding request)."""
        with self.lock:
            self._counter(model).prompt_tokens += tokens

    def count_fault(self, model: str, code: int | None) -> None:
        with self.lock:
            counters = self._counter(model)
            if code == 429:
                counters.rejected += 1
            else:
                counters.faulted += 1

    def input_tokens(self, body: dict[str, Any], model: str) -> tuple[dict[str, int], int]:
        """``(prompt tokens by modality, cached tokens)`` of a generate request;
        ``ResourceError`` (400) when it has no contents, 404 when its cache is missing or
        expired."""
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise ResourceError(
                400, "Unable to submit request because it has an empty contents field."
            )
        cache_name = body.get("cachedContent")
        cached = self.caches.tokens(str(cache_name)) if cache_name else 0
        return prompt_details(body, model), cached

    def answer_request(self, model: str, request: Any) -> dict[str, Any]:
        """The generateContent response JSON for a batch line's ``request`` (``ResourceError``
        when invalid)."""
        if not isinstance(request, dict):
            raise ResourceError(400, "The request must be a JSON object.")
        details, cached = self.input_tokens(request, model)
        answer = make_answer(
            model,
            request,
            prompt=sum(details.values()),
            cached=cached,
            scripted=self.scripted_text(model, request),
            details=details,
            calls=self.scripted_calls(model, request),
        )
        envelope = {"modelVersion": model, "createTime": self.timeline.stamp(self.clock())}
        return response_json(answer, envelope)

    def next_response_id(self) -> str:
        self._serial += 1  # only the event-loop thread calls this
        return f"emu-{self._serial:08x}"

    def scripted_text(self, model: str, body: dict[str, Any]) -> str | None:
        responder = self.responder
        if responder is not None:
            return responder(body)
        scripted = self.scripted
        if not scripted:
            return None
        return scripted.get(model, scripted.get(None))

    def scripted_calls(self, model: str, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The function calls a script makes for this request (None: answer with text)."""
        scripts = self.function_scripts
        script = scripts.get(model, scripts.get(None)) if scripts else None
        return None if script is None else script.calls_for(body)

    # -- facade (test thread) ---------------------------------------------------------------

    def stats(self) -> EmulatorStats:
        with self.lock:
            peaks: dict[str, tuple[int, int]] = {}
            for (_, model), window in self.quotas.windows.items():
                rpm, tpm = peaks.get(model, (0, 0))
                peaks[model] = (max(rpm, window.peak_requests), max(tpm, window.peak_tokens))
            models = {
                model: ModelStats(
                    accepted=c.accepted,
                    rejected=c.rejected,
                    faulted=c.faulted,
                    peak_rpm=peaks.get(model, (0, 0))[0],
                    peak_tpm=peaks.get(model, (0, 0))[1],
                    prompt_tokens=c.prompt_tokens,
                    output_tokens=c.output_tokens,
                    seconds=self.capacity.seconds(model),
                )
                for model, c in self._counters.items()
            }
        return EmulatorStats(
            models=models,
            accepted=sum(m.accepted for m in models.values()),
            rejected=sum(m.rejected for m in models.values()),
            faulted=sum(m.faulted for m in models.values()),
        )

    def reset(self) -> None:
        """Back to how it was built: no records, stats, windows, faults, caches, jobs, scripts."""
        rpm, tpm, model_quotas = self._initial_quotas
        capacity, schedule, burst = self._initial_capacity
        with self.lock:
            self.quotas = QuotaBook(rpm, tpm, model_quotas)
            self.capacity = CapacityBook(capacity, schedule, burst, self.clock())
            self._counters.clear()
        self.records.clear()
        self.faults.clear()
        self.caches.clear()
        self.batches.clear()
        self.search.reset()
        self.responder = None
        self.scripted = {}
        self.function_scripts = {}
