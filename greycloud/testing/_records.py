"""What the emulator received, as tests inspect it through ``VertexEmulator.requests()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    """One received request.

    ``headers`` leave out ``Authorization`` and ``x-goog-api-key`` (secrets). ``body`` is the
    parsed JSON body (None when there was none). ``model`` is the model id from the URL (None
    for caches and batch jobs); ``time`` is the emulator's clock when the request arrived.
    ``status`` is the HTTP status that was sent (0 when the connection was dropped or cut
    before a status line; it stays 200 for a stream cut after its headers).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    model: str | None
    time: float
    project: str | None = None
    location: str | None = None
    status: int = 0
    fault: str | None = field(default=None)
