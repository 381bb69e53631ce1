"""The HTTP side: route parsing, the request handler, streams and faults, server start-up.

Built on aiohttp's low-level ``web.Server`` (its C HTTP parser, no router or middlewares):
the handler parses the path itself, which is both faster and lets one function serve the
Vertex AI, express-mode and Gemini Developer API URL shapes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import weakref
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._answers import make_answer, prompt_details, response_json, stream_events
from ._capacity import EXHAUSTED_MESSAGE
from ._embeddings import EMBEDDING_METHODS, answer_embedding
from ._faults import Fault
from ._quota import Refusal
from ._records import RequestRecord
from ._rpc import ResourceError, dumps, error_body, quota_details, retry_after_header
from ._search import parse_search_path
from ._state import EmulatorState

logger = logging.getLogger("greycloud.emulator")

_VERTEX_VERSIONS = frozenset({"v1", "v1beta1"})
_DEVELOPER_VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
_MODEL_METHODS = frozenset(
    {"generateContent", "streamGenerateContent", "countTokens", *EMBEDDING_METHODS}
)
_SECRET_HEADERS = frozenset({"authorization", "x-goog-api-key"})
_JSON_TYPE = "application/json; charset=UTF-8"
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_INVALID_JSON = object()


@dataclass(frozen=True)
class Route:
    """What a URL path addresses.

    ``kind``: "model" (a model method), "caches"/"cache", "batches"/"batch"/"batch_cancel",
    "search" (Vertex AI Search; ``name`` is the datastore).
    ``parent``: the resource parent ("projects/P/locations/L", or "" on the Developer API).
    ``vertex``: a Vertex AI path (False: the Gemini Developer API).
    """

    kind: str
    project: str | None
    location: str | None
    parent: str
    model: str | None = None
    method: str | None = None
    name: str | None = None
    vertex: bool = True


def parse_route(path: str) -> Route | None:
    parts = path.strip("/").split("/")
    if len(parts) < 2:
        return None
    searched = parse_search_path(parts)
    if searched is not None:
        in_project, in_location, datastore = searched
        parent = f"projects/{in_project}/locations/{in_location}"
        return Route("search", in_project, in_location, parent, name=datastore)
    version = parts[0]
    project: str | None
    location: str | None
    if parts[1] == "projects":
        if version not in _VERTEX_VERSIONS or len(parts) < 6 or parts[3] != "locations":
            return None
        project, location = parts[2], parts[4]
        parent = f"projects/{project}/locations/{location}"
        rest = parts[5:]
    elif parts[1] == "publishers":  # express mode
        if version not in _VERTEX_VERSIONS:
            return None
        project = location = None
        parent, rest = "", parts[1:]
    else:  # Gemini Developer API
        if version not in _DEVELOPER_VERSIONS:
            return None
        project = location = None
        parent, rest = "", parts[1:]
    vertex = parts[1] in ("projects", "publishers")

    head = rest[0]
    if head in ("publishers", "models", "endpoints"):
        if head == "publishers":
            if len(rest) != 4 or rest[2] != "models":
                return None
            target = rest[3]
        else:
            if len(rest) != 2:
                return None
            target = rest[1]
        model, _, method = target.partition(":")
        if head == "endpoints":
            model = f"endpoints/{model}"
        if not model or method not in _MODEL_METHODS:
            return None
        return Route("model", project, location, parent, model=model, method=method, vertex=vertex)
    if head == "cachedContents":
        if len(rest) == 1:
            return Route("caches", project, location, parent)
        if len(rest) == 2:
            name = "/".join(filter(None, (parent, "cachedContents", rest[1])))
            return Route("cache", project, location, parent, name=name)
        return None
    if head == "batchPredictionJobs" and project is not None:
        if len(rest) == 1:
            return Route("batches", project, location, parent)
        if len(rest) == 2:
            job, _, action = rest[1].partition(":")
            if not job.isdigit() or action not in ("", "cancel"):
                return None
            name = f"{parent}/batchPredictionJobs/{job}"
            return Route(
                "batch_cancel" if action else "batch", project, location, parent, name=name
            )
    return None


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    all_headers = {"Content-Type": _JSON_TYPE}
    if headers:
        all_headers.update(headers)
    return web.Response(body=dumps(payload), status=status, headers=all_headers)


def error_response(code: int, message: str) -> web.Response:
    return json_response(error_body(code, message), code)


def _refusal_response(refusal: Refusal | bool) -> web.Response:
    if not isinstance(refusal, Refusal):
        # The shared pool is busy: Vertex says so without a quota id or a retry delay.
        return json_response(error_body(429, EXHAUSTED_MESSAGE), 429)
    body = error_body(
        429, refusal.message, details=quota_details(refusal.quota_id, refusal.retry_delay)
    )
    return json_response(body, 429, {"Retry-After": retry_after_header(refusal.retry_delay)})


def _close(request: web.BaseRequest, *, reset: bool = False) -> None:
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger on with a zero timeout: close() then sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


class Handler:
    """The one request handler; all state lives in :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._nodelay_done: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    def _ensure_nodelay(self, request: web.BaseRequest) -> None:
        # asyncio sets TCP_NODELAY already; set it explicitly (once per connection) because a
        # loopback server without it stalls responses ~40 ms behind Nagle + delayed ACK.
        transport = request.transport
        if transport is None or transport in self._nodelay_done:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._nodelay_done.add(transport)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        self._ensure_nodelay(request)
        state = self.state
        path = request.path
        route = parse_route(path)
        body: Any = None
        if request.body_exists:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = _INVALID_JSON
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS}
        record = RequestRecord(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers=headers,
            body=None if body is _INVALID_JSON else body,
            model=route.model if route else None,
            time=state.clock(),
            project=route.project if route else None,
            location=route.location if route else None,
        )
        state.records.append(record)
        response = await self._respond(request, record, route, body)
        record.status = 0 if record.fault == "drop" else response.status
        return response

    async def _respond(
        self, request: web.BaseRequest, record: RequestRecord, route: Route | None, body: Any
    ) -> web.StreamResponse:
        state = self.state
        if route is None:
            return error_response(404, f"The requested URL {record.path} was not found.")
        api_key = request.headers.get("x-goog-api-key") or request.query.get("key")
        denied = state.tokens.check(request.headers.get("Authorization"), api_key)
        if denied is not None:
            return json_response(denied, denied["error"]["code"])
        if body is _INVALID_JSON:
            return error_response(400, "Invalid JSON payload received.")

        streaming = route.method == "streamGenerateContent"
        stream_fault: Fault | None = None
        if state.faults:
            fault = state.faults.take(record, streaming)
            if fault is not None:
                record.fault = fault.kind
                if fault.kind == "status":
                    if route.model is not None:
                        state.count_fault(route.model, fault.code)
                    extra = (
                        {"Retry-After": retry_after_header(fault.retry_after)}
                        if fault.code == 429 and fault.retry_after is not None
                        else None
                    )
                    return json_response(fault.body, fault.code, extra)
                if fault.kind == "drop":
                    if route.model is not None:
                        state.count_fault(route.model, None)
                    _close(request)
                    return web.Response()  # never sent: aiohttp drops the write silently
                if fault.kind == "delay":
                    await asyncio.sleep(fault.seconds)
                else:
                    stream_fault = fault
        if state.latency:
            await asyncio.sleep(state.latency)

        try:
            if route.kind == "model":
                return await self._model(request, record, route, body, stream_fault)
            if route.kind == "search":
                return self._search(request, route, body)
            return self._resource(request, route, body)
        except ResourceError as exc:
            return error_response(exc.code, exc.message)

    # -- models -----------------------------------------------------------------------------

    async def _model(
        self,
        request: web.BaseRequest,
        record: RequestRecord,
        route: Route,
        body: Any,
        fault: Fault | None,
    ) -> web.StreamResponse:
        state = self.state
        model = route.model
        assert model is not None
        if request.method != "POST":
            return error_response(405, f"{route.method} takes POST.")
        if not isinstance(body, dict):
            return error_response(400, "The request body must be a JSON object.")
        if route.method == "countTokens":
            return self._count_tokens(body, model)
        if route.method in EMBEDDING_METHODS:
            return self._embed(route, model, body)
        details, cached = state.input_tokens(body, model)
        prompt = sum(details.values())
        refusal = state.admit(route.project or state.project, model, prompt + cached)
        if refusal is not None:
            return _refusal_response(refusal)
        try:
            scripted = state.scripted_text(model, body)
        except Exception:
            logger.exception("the emulator's responder raised")
            return error_response(500, "The emulator's responder raised; see the log.")
        answer = make_answer(
            model,
            body,
            prompt=prompt,
            cached=cached,
            scripted=scripted,
            details=details,
            calls=state.scripted_calls(model, body),
        )
        state.count_answer(model, answer)
        envelope = {
            "modelVersion": model,
            "createTime": state.timeline.stamp(state.clock()),
            "responseId": state.next_response_id(),
        }
        if route.method == "generateContent":
            return json_response(response_json(answer, envelope))

        events = [
            b"data: " + dumps(event) + b"\r\n\r\n" for event in stream_events(answer, envelope)
        ]
        return await self._stream(request, record, events, fault)

    def _embed(self, route: Route, model: str, body: dict[str, Any]) -> web.Response:
        assert route.method is not None
        answer = answer_embedding(route.method, model, body, route.vertex)
        state = self.state
        refusal = state.admit(route.project or state.project, model, answer.tokens)
        if refusal is not None:
            return _refusal_response(refusal)
        state.count_prompt_tokens(model, answer.tokens)
        return json_response(answer.body)

    def _count_tokens(self, body: dict[str, Any], model: str) -> web.Response:
        inner = body.get("generateContentRequest")
        source = inner if isinstance(inner, dict) else body
        details = prompt_details(source, model)
        tokens = sum(details.values())
        return json_response(
            {
                "totalTokens": tokens,
                "totalBillableCharacters": details.get("TEXT", 0) * 4,
                "promptTokensDetails": [
                    {"modality": modality, "tokenCount": count}
                    for modality, count in details.items()
                ],
            }
        )

    async def _stream(
        self,
        request: web.BaseRequest,
        record: RequestRecord,
        events: list[bytes],
        fault: Fault | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=_SSE_HEADERS)
        # Chunked framing, so a connection closed mid-stream is an error for the client.
        response.enable_chunked_encoding()
        await response.prepare(request)
        # Recorded now: the client may have read every event before this handler returns.
        record.status = response.status
        pause = self.state.event_delay
        if fault is not None and fault.kind == "event_delay":
            pause = fault.seconds
        stop = len(events)
        if fault is not None and fault.kind in ("cut_stream", "half_event", "error_event"):
            stop = min(fault.after_events, len(events))
        try:
            await self._write_events(request, response, events, stop, pause, fault)
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError too
            # The client stopped reading (closed or dropped the stream): normal, not an error.
            logger.debug("the client left the stream on %s before its end", request.path)
        return response

    async def _write_events(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        events: list[bytes],
        stop: int,
        pause: float,
        fault: Fault | None,
    ) -> None:
        for event in events[:stop]:
            if pause:
                await asyncio.sleep(pause)
            await response.write(event)
        if fault is None or fault.kind == "event_delay":
            await response.write_eof()
        elif fault.kind == "error_event":
            await response.write(b"data: " + dumps(fault.body) + b"\r\n\r\n")
            await response.write_eof()
        elif fault.kind == "half_event":
            following = events[stop] if stop < len(events) else events[-1]
            await response.write(following[: len(following) // 2])
            _close(request)
        else:  # cut_stream
            if fault.reset:
                # Give the client a moment to read the events already sent: data still
                # queued at the receiver can be discarded once the RST arrives.
                await asyncio.sleep(0.05)
            _close(request, reset=fault.reset)

    def _search(self, request: web.BaseRequest, route: Route, body: Any) -> web.Response:
        if request.method != "POST" or route.name is None:
            return error_response(405, f"{request.method} is not supported on {request.path}.")
        return json_response(self.state.search.search(route.name, body))

    # -- caches and batch jobs --------------------------------------------------------------

    def _resource(self, request: web.BaseRequest, route: Route, body: Any) -> web.Response:
        method = request.method
        query = request.query
        caches = self.state.caches
        batches = self.state.batches
        payload = body if isinstance(body, dict) else {}
        kind = route.kind
        # Vertex AI express mode (an API key, no project in the path) names its caches under the
        # key's project, as the service does; the SDK needs such full names to get or delete one
        # (it would turn a short name into projects/None/locations/None/...).
        express = f"projects/{self.state.project}/locations/{self.state.location}"
        if kind == "caches" and method == "POST":
            vertex_model = "publishers/" in str(payload.get("model", ""))
            parent = express if not route.parent and vertex_model else route.parent
            return json_response(caches.create(parent, payload))
        if kind == "caches" and method == "GET":
            return json_response(
                caches.list(
                    route.parent,
                    query.get("pageSize"),
                    query.get("pageToken"),
                    also_under=None if route.parent else express,
                )
            )
        if kind == "cache" and route.name is not None:
            if method == "GET":
                return json_response(caches.get(route.name))
            if method == "PATCH":
                return json_response(caches.update(route.name, payload))
            if method == "DELETE":
                caches.delete(route.name)
                return json_response({})
        if kind == "batches" and method == "POST":
            return json_response(batches.create(route.parent, payload))
        if kind == "batches" and method == "GET":
            return json_response(
                batches.list(route.parent, query.get("pageSize"), query.get("pageToken"))
            )
        if kind == "batch" and route.name is not None:
            if method == "GET":
                return json_response(batches.get(route.name))
            if method == "DELETE":
                return json_response(batches.delete(route.name))
        if kind == "batch_cancel" and route.name is not None and method == "POST":
            return json_response(batches.cancel(route.name))
        return error_response(405, f"{method} is not supported on {request.path}.")


async def start_server(state: EmulatorState, host: str, port: int) -> tuple[web.ServerRunner, int]:
    """Listen on ``host:port`` (0 picks a free port); returns the runner and the bound port."""
    server = web.Server(Handler(state), access_log=None)
    runner = web.ServerRunner(server, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound = int(runner.addresses[0][1])
    logger.debug("emulator listening on %s:%d", host, bound)
    return runner, bound
