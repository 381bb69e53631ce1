"""``EmulatorProcess``: a ``VertexEmulator`` in a process of its own.

A server that shares the GIL with a busy client (or a Beam runner) stamps requests late, which
blurs quota windows and latency figures. In its own (spawned) process it does not; the parent
asks it for ``stats()``, ``reset()`` and quota changes over a pipe.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
from types import TracebackType
from typing import Any

from greycloud.config import GreyCloudConfig

from ._emulator import VertexEmulator
from ._state import EmulatorStats


def _serve(connection: multiprocessing.connection.Connection, options: dict[str, Any]) -> None:
    with VertexEmulator(**options) as emulator:
        connection.send((emulator.base_url, emulator.project, emulator.location))
        while True:
            command, arguments = connection.recv()
            if command == "stop":
                return
            if command == "stats":
                connection.send(emulator.stats())
            elif command == "reset":
                emulator.reset()
                connection.send(None)
            elif command == "set_quota":
                emulator.set_quota(**arguments)
                connection.send(None)
            elif command == "script_function_calls":
                emulator.script_function_calls(**arguments)
                connection.send(None)


class EmulatorProcess:
    """``with EmulatorProcess(rpm=..., tpm=...) as server:``; ``server.config()`` points at it.

    Takes ``VertexEmulator``'s keyword arguments (picklable ones only: no ``clock``), with
    ``accept_any_token=True`` and ``max_records=100`` unless given: clients in any process
    reach it with any bearer token, e.g. ``google.oauth2.credentials.Credentials(token="t")``.
    """

    def __init__(self, **options: Any) -> None:
        options = {"accept_any_token": True, "max_records": 100, **options}
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, options), daemon=True)
        self._process.start()
        self.base_url, self.project, self.location = self._connection.recv()

    def config(self, **overrides: Any) -> GreyCloudConfig:
        """A ``GreyCloudConfig`` pointing at this emulator (``overrides`` replace any field)."""
        values: dict[str, Any] = {
            "project_id": self.project,
            "location": self.location,
            "endpoint": self.base_url,
            "api_version": "v1",
        }
        values.update(overrides)
        return GreyCloudConfig(**values)

    def _call(self, command: str, **arguments: Any) -> Any:
        self._connection.send((command, arguments))
        return self._connection.recv()

    def stats(self) -> EmulatorStats:
        stats: EmulatorStats = self._call("stats")
        return stats

    def reset(self) -> None:
        self._call("reset")

    def set_quota(self, **quota: Any) -> None:
        self._call("set_quota", **quota)

    def script_function_calls(self, steps: Any) -> None:
        """``VertexEmulator.script_function_calls`` in the server's process."""
        self._call("script_function_calls", steps=steps)

    def stop(self) -> None:
        if self._process.is_alive():
            self._connection.send(("stop", {}))
            self._process.join(10)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
