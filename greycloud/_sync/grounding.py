# DO NOT EDIT: generated from _async_src/grounding.py by tools/generate.py.
# Change _async_src/grounding.py and run `make generate`.
# output-sha256: 34e65da4b246a018
"""Grounding in a Vertex AI Search datastore, for every model.

``grounding_mode="inject"`` (the default): before generation the datastore is searched through
the Discovery Engine ``:search`` REST API with the client's own credentials, and the top results
go in front of the last user message as a numbered sources block. ``"tool"``: the request
carries the server-side retrieval tool instead (added by ``build_request``) and nothing is
searched here. A search problem never fails the call: it is retried briefly, then the call goes
ahead ungrounded with a warning.

Every grounded call logs one record on the ``greycloud.grounding`` logger whose ``grounding``
attribute says which path was taken (see the README's grounding section).

This file is the only hand-written copy; ``make generate`` produces the twin for the other
client. The pure parts live in ``greycloud._core.grounding_text``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests

from .. import _telemetry, auth
from .._core.grounding_text import (
    GROUNDING_LOGGER,
    MAX_SOURCES,
    MalformedSearchResponse,
    SearchFailed,
    Source,
    build_sources_block,
    last_user_text,
    normalise_query,
    parse_search_response,
    search_body,
    search_url,
    strip_quotes,
    with_sources,
)
from .._core.request import GenerateRequest, prompt_estimate
from .._core.retry import TRANSIENT_STATUS
from .._primitives import sync_run_blocking, sync_sleep
from ..config import GreyCloudConfig

# One record per call, and nothing else, on the grounding logger (handlers count its records);
# details such as search retries go to "greycloud.search", which is not below it.
logger = logging.getLogger(GROUNDING_LOGGER)
detail_logger = logging.getLogger("greycloud.search")

SEARCH_TIMEOUT = 10.0  # seconds per search attempt (connect and read)
RETRY_DELAYS = (0.1, 0.3)  # seconds before the second and third attempt

# The values of a log record's ``grounding`` attribute.
TOOL = "tool"  # the retrieval tool was sent
INJECT = "inject"  # a sources block was put in front of the last user message
SKIPPED = "skipped"  # the call passed its own tools=, so nothing was added
NO_RESULTS = "no_results"  # searched (or nothing to search for), nothing found: ungrounded
FAILED = "failed"  # the search failed: ungrounded, with a warning


class SearchTransport:
    """Blocking HTTP to Discovery Engine, authorised like the client (run off the loop).

    ``credentials`` returns the client's current credentials, so a refresh or a rebuild of
    them by the client is seen here too; with none, the client's API key is sent instead.
    """

    def __init__(
        self, credentials: Callable[[], auth.Credentials | None], api_key: str | None
    ) -> None:
        self._credentials = credentials
        self._api_key = api_key
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._session_credentials: auth.Credentials | None = None

    def _current_session(self) -> requests.Session:
        credentials = self._credentials()
        with self._lock:
            if self._session is None or credentials is not self._session_credentials:
                if self._session is not None:
                    self._session.close()
                session: requests.Session
                if credentials is not None:
                    session = google.auth.transport.requests.AuthorizedSession(  # type: ignore[no-untyped-call]
                        credentials
                    )
                else:
                    session = requests.Session()
                    if self._api_key is not None:
                        session.headers["x-goog-api-key"] = self._api_key
                self._session, self._session_credentials = session, credentials
            return self._session

    def post(self, url: str, body: dict[str, Any], timeout: float) -> Any:
        """The parsed JSON of a 200 answer; ``SearchFailed`` for anything else."""
        try:
            response = self._current_session().post(url, json=body, timeout=timeout)
        except requests.RequestException as exc:
            raise SearchFailed(f"{type(exc).__name__}: {exc}", transient=True) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            transient = isinstance(exc, google.auth.exceptions.TransportError)
            raise SearchFailed(f"credentials: {exc}", transient=transient) from exc
        if response.status_code != 200:
            raise SearchFailed(
                f"HTTP {response.status_code}: {_error_message(response)}",
                transient=response.status_code in TRANSIENT_STATUS,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise SearchFailed(
                "the search answered with something that is not JSON", transient=True
            ) from exc

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = self._session_credentials = None


def _error_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or error.get("status") or response.reason)
    except (ValueError, AttributeError):
        return str(response.reason)


class SearchGrounding:
    """Grounds generation requests in the config's Vertex AI Search datastore.

    ``ground(request)`` returns the request to send: with a sources block (``inject``), or
    unchanged (``tool`` mode, grounding off, explicit tools, no results, or a failed search).
    """

    def __init__(
        self,
        config: GreyCloudConfig,
        credentials: Callable[[], auth.Credentials | None],
        api_key: str | None = None,
    ) -> None:
        self.config = config
        self.datastore = config.vertex_ai_search_datastore
        self.url = search_url(self.datastore, config.search_endpoint) if self.datastore else None
        self._transport = SearchTransport(credentials, api_key)

    def close(self) -> None:
        """Close the search connections (the object stays usable: they reopen when needed)."""
        self._transport.close()

    def ground(self, request: GenerateRequest, *, explicit_tools: bool) -> GenerateRequest:
        """The request to send, grounded as the config asks; never raises for search problems."""
        config = self.config
        if not config.use_vertex_ai_search:
            return request
        if explicit_tools:
            return self._outcome(request, SKIPPED)
        if config.grounding_mode == "tool":
            return self._outcome(request, TOOL)
        query = normalise_query(last_user_text(request.contents))
        if not query:
            return self._outcome(request, NO_RESULTS)
        try:
            sources = self.search(query)
        except SearchFailed as exc:
            return self._failed(request, str(exc))
        except Exception as exc:  # a search problem must never fail the call
            detail_logger.debug("unexpected search failure", exc_info=True)
            return self._failed(request, f"{type(exc).__name__}: {exc}")
        sources = sources[:MAX_SOURCES]
        block = build_sources_block(sources)
        if not block:
            return self._outcome(request, NO_RESULTS)
        contents = with_sources(request.contents, block)
        system = request.config.system_instruction if request.config is not None else None
        grounded = dataclasses.replace(
            request,
            contents=contents,
            estimate=prompt_estimate(contents, system, request.model, request.config),
        )
        return self._outcome(grounded, INJECT, len(sources))

    def search(self, query: str) -> list[Source]:
        """The datastore's top results for ``query``; once more without quotes if none.

        Raises ``SearchFailed`` when the search keeps failing.
        """
        sources = self._search_once(query)
        if not sources:
            unquoted = strip_quotes(query)
            if unquoted and unquoted != query:
                sources = self._search_once(unquoted)
        return sources

    def _search_once(self, query: str) -> list[Source]:
        assert self.url is not None  # the config checks that a datastore is set
        body = search_body(query, MAX_SOURCES)
        attempt = 0
        while True:
            attempt += 1
            try:
                payload = sync_run_blocking(self._transport.post, self.url, body, SEARCH_TIMEOUT)
                return parse_search_response(payload)
            except (SearchFailed, MalformedSearchResponse) as exc:
                transient = getattr(exc, "transient", True)
                if not transient or attempt > len(RETRY_DELAYS):
                    raise SearchFailed(str(exc), transient=transient) from exc
                delay = RETRY_DELAYS[attempt - 1]
                detail_logger.info(
                    "search attempt %d failed (%s); retrying in %.2fs", attempt, exc, delay
                )
                sync_sleep(delay)

    def _outcome(
        self, request: GenerateRequest, grounding: str, sources: int = 0
    ) -> GenerateRequest:
        logger.info(
            "grounding=%s sources=%d model=%s datastore=%s",
            grounding,
            sources,
            request.model,
            self.datastore,
            extra={"grounding": grounding, "grounding_sources": sources},
        )
        _telemetry.note_grounding(grounding, sources)
        return request

    def _failed(self, request: GenerateRequest, reason: str) -> GenerateRequest:
        logger.warning(
            "Vertex AI Search failed (%s); answering %s without grounding",
            reason,
            request.model,
            extra={"grounding": FAILED, "grounding_sources": 0},
        )
        _telemetry.note_grounding(FAILED, 0)
        return request
