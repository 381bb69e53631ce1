"""``VertexEmulator``: the public face of the emulator, serving from a background thread.

The server runs on its own event loop in a daemon thread, so sync tests, async tests (on
their own loop) and other processes can all talk to it over a real socket.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._auth import EmulatorCredentials
from ._capacity import CapacityBook, CapacityLike, CapacityStep
from ._faults import Fault
from ._records import RequestRecord
from ._search import SearchDocument
from ._server import start_server
from ._state import EmulatorState, EmulatorStats, Responder
from ._structured import FunctionScript

if TYPE_CHECKING:
    from aiohttp import web
    from google import genai

    from greycloud.config import GreyCloudConfig


class _Keep:
    """Marks a quota argument that was not passed (None means "unlimited")."""


_KEEP = _Keep()


class VertexEmulator:
    """A local Vertex AI (and Gemini Developer API) endpoint for tests and benchmarks.

    ``rpm``/``tpm``: requests and input tokens per rolling minute per (project, model), None
    for unlimited; ``model_quotas`` overrides them per model, e.g. ``{"gemini-2.5-pro":
    {"rpm": 5}}``. ``latency``: seconds added before every answer; ``event_delay``: seconds
    between the events of every stream (a slow model; a fault's ``event_delay`` overrides it).
    ``clock``: a monotonic clock in seconds (inject one to move quota windows, cache expiry
    and batch states without sleeping). ``batch_step``: seconds a batch job spends in each
    of PENDING and RUNNING.
    ``max_records``: how many requests ``requests()`` keeps (oldest dropped; None = all).
    ``accept_any_token``: let any bearer token in (for pointing real tools at it).
    ``capacity``: capacity mode, like Vertex AI's Dynamic Shared Quota: a hidden shared pool
    per model serving this many requests per second (a number, or a ``Capacity`` with
    requests and input tokens per second; a dict gives it per model), answering 429
    RESOURCE_EXHAUSTED "Resource exhausted, please try again later." (no quota id, no retry
    delay) beyond it. A list of ``(at_seconds, capacity)`` steps is a schedule counted from
    ``start()``. ``capacity_burst``: seconds of capacity the pool can serve at once after a
    lull. ``stats()[model].seconds`` then reports goodput and 429s per second.
    ``gcs_endpoint``: the Cloud Storage endpoint (e.g. a ``GcsEmulator``'s) from which batch
    jobs read their input and to which they write ``predictions.jsonl``; without it
    ``STORAGE_EMULATOR_HOST`` is used, and with neither, batch jobs only change state.

    Quotas apply to generateContent, streamGenerateContent and the embedding routes (under
    the embedding model's id): countTokens has its own, much larger quota on Vertex AI, so
    here it is free. Bearer tokens and API keys are both
    accepted on every path (real Vertex AI is stricter about which goes where).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        rpm: int | None = None,
        tpm: int | None = None,
        latency: float = 0.0,
        event_delay: float = 0.0,
        project: str = "test-project",
        location: str = "us-central1",
        model_quotas: dict[str, dict[str, int | None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        batch_step: float = 0.2,
        max_records: int | None = 10_000,
        accept_any_token: bool = False,
        gcs_endpoint: str | None = None,
        capacity: CapacityLike | dict[str, CapacityLike] | list[CapacityStep] | None = None,
        capacity_burst: float = 1.0,
    ) -> None:
        self.host = host
        schedule: list[CapacityStep] | None = None
        if isinstance(capacity, list):
            schedule, capacity = capacity, None
        self._requested_port = port
        self._latency = latency
        self._event_delay = event_delay
        self._batch_step = batch_step
        self._state = EmulatorState(
            project=project,
            location=location,
            rpm=rpm,
            tpm=tpm,
            model_quotas=model_quotas,
            latency=latency,
            event_delay=event_delay,
            clock=clock,
            batch_step=batch_step,
            max_records=max_records,
            accept_any_token=accept_any_token,
            capacity=capacity,
            capacity_schedule=schedule,
            capacity_burst=capacity_burst,
        )
        self._gcs_endpoint = gcs_endpoint
        self._state.gcs_endpoint = gcs_endpoint
        self._credentials = EmulatorCredentials(self._state.tokens)
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.ServerRunner | None = None
        self._startup_error: BaseException | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> VertexEmulator:
        """Start serving (returns once the port is bound)."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        ready = threading.Event()
        self._startup_error = None
        with self._state.lock:
            self._state.capacity.restart(self._state.clock())  # schedules count from here
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="vertex-emulator", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(
                f"the emulator could not listen on {self.host}:{self._requested_port} "
                f"({self._startup_error}); choose another port, or port 0 for a free one"
            ) from self._startup_error
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._runner, self._port = loop.run_until_complete(
                start_server(self._state, self.host, self._requested_port)
            )
        except BaseException as exc:  # handed to start() in the caller's thread
            self._startup_error = exc
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop serving and close every connection (open streams are cut)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = self._runner = None
        self._port = None

    def __enter__(self) -> VertexEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where and as whom -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not running; call start() or use `with`")
        return self._port

    @property
    def base_url(self) -> str:
        """e.g. ``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def project(self) -> str:
        return self._state.project

    @property
    def location(self) -> str:
        return self._state.location

    @property
    def credentials(self) -> EmulatorCredentials:
        """google-auth credentials holding a token the emulator accepts; ``refresh()`` mints
        a new one offline."""
        return self._credentials

    @property
    def token(self) -> str:
        """The most recently minted (current) bearer token."""
        return self._state.tokens.current

    @property
    def api_key(self) -> str:
        """An API key accepted in ``x-goog-api-key`` (express mode and Developer API paths)."""
        return self._state.tokens.api_key

    def config(self, **overrides: Any) -> GreyCloudConfig:
        """A ``GreyCloudConfig`` pointing at this emulator (``overrides`` replace any field)."""
        return config_for(self.base_url, self.project, self.location, overrides)

    def sdk_client(
        self, *, vertexai: bool = True, api_key: bool = False, **http: Any
    ) -> genai.Client:
        """A raw ``google.genai.Client`` for this emulator, with the SDK's retries off.

        ``api_key=True`` (or ``vertexai=False``) uses the API key instead of the credentials;
        ``http`` goes to ``HttpOptions`` (e.g. ``timeout=`` in milliseconds). Keep a
        reference to the client while using it: its ``__del__`` closes it.
        """
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=self.base_url,
            api_version=http.pop("api_version", "v1" if vertexai else "v1beta"),
            retry_options=types.HttpRetryOptions(attempts=1),
            **http,
        )
        if api_key or not vertexai:
            return genai.Client(vertexai=vertexai, api_key=self.api_key, http_options=options)
        return genai.Client(
            vertexai=True,
            project=self.project,
            location=self.location,
            credentials=self._credentials,
            http_options=options,
        )

    # -- tokens ------------------------------------------------------------------------------

    def expire_token(self, token: str | None = None) -> str:
        """Expire ``token`` (default: the current one); requests with it then get 401
        ACCESS_TOKEN_EXPIRED until the client refreshes. Returns the expired token."""
        return self._state.tokens.expire(token)

    def accept_token(self, token: str) -> None:
        """Accept another bearer token (e.g. one a test made up)."""
        self._state.tokens.accept(token)

    def accept_api_key(self, key: str) -> None:
        self._state.tokens.accept_api_key(key)

    # -- behaviour ---------------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds to wait before every answer (settable while running)."""
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = seconds

    def set_quota(
        self,
        *,
        rpm: int | _Keep | None = _KEEP,
        tpm: int | _Keep | None = _KEEP,
        model: str | None = None,
    ) -> None:
        """Change the rpm and/or tpm quota for all models or one ``model`` (None: unlimited).

        Takes effect for the next request; windows keep what they already counted.
        """
        quota = {
            name: value
            for name, value in (("rpm", rpm), ("tpm", tpm))
            if not isinstance(value, _Keep)
        }
        with self._state.lock:
            self._state.quotas.set(model=model, **quota)

    def set_capacity(
        self,
        capacity: CapacityLike | list[CapacityStep] | None,
        *,
        model: str | None = None,
    ) -> None:
        """Change the shared pool's capacity (see the class) for every model or one ``model``;
        None lifts it. A list of ``(at_seconds, capacity)`` steps starts a new schedule counted
        from now (for every model). Takes effect for the next request."""
        state = self._state
        with state.lock:
            if isinstance(capacity, list):
                state.capacity = CapacityBook(None, capacity, state.capacity.burst, state.clock())
            else:
                state.capacity.set(capacity, model)

    def set_response_text(self, text: str | None, model: str | None = None) -> None:
        """Answer every generate call (or those to ``model``) with ``text``; None goes back to
        generated text."""
        scripted = dict(self._state.scripted)
        if text is None:
            scripted.pop(model, None)
        else:
            scripted[model] = text
        self._state.scripted = scripted

    def script_function_calls(
        self,
        steps: Sequence[Mapping[str, Any] | Sequence[Mapping[str, Any]]] | None,
        model: str | None = None,
    ) -> None:
        """Make the model call functions: for a request that declares tools, ``steps[i]`` (one
        call ``{"name": ..., "args": {...}}`` or a list of calls made together) answers once
        the request carries ``i`` turns of function replies since the user's last message;
        after the last step the model answers with text. Applies to every model or to
        ``model``; None removes the script. The answer depends on the request alone, so
        retried and restarted requests get the same one."""
        scripts = dict(self._state.function_scripts)
        if steps is None:
            scripts.pop(model, None)
        else:
            scripts[model] = FunctionScript.build(steps)
        self._state.function_scripts = scripts

    @property
    def responder(self) -> Responder | None:
        """``fn(request_json) -> str`` deciding the answer text (it beats set_response_text).
        It runs on the emulator's event loop: keep it quick and non-blocking."""
        return self._state.responder

    @responder.setter
    def responder(self, fn: Responder | None) -> None:
        self._state.responder = fn

    @property
    def event_delay(self) -> float:
        """Seconds between the events of every stream (settable while running)."""
        return self._state.event_delay

    @event_delay.setter
    def event_delay(self, seconds: float) -> None:
        self._state.event_delay = seconds

    @property
    def batch_step(self) -> float:
        """Seconds a batch job spends in PENDING and then in RUNNING."""
        return self._state.batches.step

    @batch_step.setter
    def batch_step(self, seconds: float) -> None:
        self._state.batches.step = seconds

    @property
    def gcs_endpoint(self) -> str | None:
        """The Cloud Storage endpoint batch jobs use (settable while running; see the class)."""
        return self._state.gcs_endpoint

    @gcs_endpoint.setter
    def gcs_endpoint(self, endpoint: str | None) -> None:
        self._state.gcs_endpoint = endpoint

    def set_search_documents(
        self,
        documents: Iterable[SearchDocument | Mapping[str, str]],
        *,
        datastore: str | None = None,
    ) -> None:
        """The documents Vertex AI Search ``:search`` finds, for one ``datastore`` path or (None)
        every datastore without its own set. Dicts take ``title``, ``content``, ``link`` and
        ``id``. ``reset()`` goes back to a small built-in set."""
        self._state.search.set_documents(documents, datastore)

    # -- faults ------------------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        *,
        times: int | None = 1,
        path: str | None = None,
        model: str | None = None,
        match: Callable[[RequestRecord], bool] | None = None,
    ) -> None:
        """Make the next ``times`` matching requests (None: all) suffer ``fault``.

        ``path`` is a substring of the URL path (e.g. ``":streamGenerateContent"``), ``model``
        an exact model id, ``match`` a predicate on the :class:`RequestRecord`. Faults apply in
        the order injected; the first that matches and has uses left wins. Faults apply after
        authentication, so a request that is refused 401 consumes none.
        """
        self._state.faults.add(fault, times=times, path=path, model=model, match=match)

    def clear_faults(self) -> None:
        self._state.faults.clear()

    # -- what happened -----------------------------------------------------------------------

    def stats(self) -> EmulatorStats:
        """Per-model and total counts since the last reset (see ``EmulatorStats``)."""
        return self._state.stats()

    def requests(self) -> list[RequestRecord]:
        """The requests received since the last reset, oldest first."""
        return list(self._state.records.copy())  # copy() is atomic; the server appends

    def reset(self) -> None:
        """Forget requests, stats, quota windows, faults, caches, batch jobs, search documents
        and scripted answers; restore the quotas and latency given at construction, forget
        expirations (every minted token is valid again), and hand out fresh credentials."""
        self._state.reset()
        self._state.latency = self._latency
        self._state.event_delay = self._event_delay
        self._state.batches.step = self._batch_step
        self._state.gcs_endpoint = self._gcs_endpoint
        tokens = self._state.tokens
        tokens.revive()
        self._credentials = EmulatorCredentials(tokens)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "stopped"
        return f"VertexEmulator({where}, project={self.project!r}, location={self.location!r})"


def config_for(
    base_url: str, project: str, location: str, overrides: dict[str, Any]
) -> GreyCloudConfig:
    """A ``GreyCloudConfig`` pointing at the emulator at ``base_url`` (generation, counting,
    embeddings and Vertex AI Search alike); ``overrides`` replace any field."""
    from greycloud.config import GreyCloudConfig

    values: dict[str, Any] = {
        "project_id": project,
        "location": location,
        "endpoint": base_url,
        "api_version": "v1",
        "search_endpoint": base_url,
        **overrides,
    }
    return GreyCloudConfig(**values)
