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

from ._emulator import VertexEmulator, config_for
from ._state import EmulatorStats


def _serve(connection: multiprocessing.connection.Connection, options: dict[str, Any]) -> None:
    # Every command is answered ("ok", result) or ("error", exception): the parent raises it
    # rather than waiting for an answer that never comes.
    try:
        emulator = VertexEmulator(**options).start()
    except Exception as exc:
        connection.send(("error", exc))
        return
    try:
        connection.send(("ok", (emulator.base_url, emulator.project, emulator.location)))
        while True:
            command, arguments = connection.recv()
            if command == "stop":
                return
            try:
                result = emulator.stats() if command == "stats" else None
                if command == "reset":
                    emulator.reset()
                elif command == "set_quota":
                    emulator.set_quota(**arguments)
                elif command == "script_function_calls":
                    emulator.script_function_calls(**arguments)
            except Exception as exc:
                connection.send(("error", exc))
            else:
                connection.send(("ok", result))
    finally:
        emulator.stop()


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
        child.close()  # the child's end lives in the child: a child that dies ends the pipe
        self.base_url, self.project, self.location = self._receive()

    def config(self, **overrides: Any) -> GreyCloudConfig:
        """A ``GreyCloudConfig`` pointing at this emulator (``overrides`` replace any field)."""
        return config_for(self.base_url, self.project, self.location, overrides)

    def _call(self, command: str, **arguments: Any) -> Any:
        self._connection.send((command, arguments))
        return self._receive()

    def _receive(self) -> Any:
        try:
            status, value = self._connection.recv()
        except EOFError:
            raise RuntimeError(
                f"the emulator's process ended (exit code {self._process.exitcode})"
            ) from None
        if status == "error":
            raise value
        return value

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
