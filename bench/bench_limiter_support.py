"""Shared by the limiter benchmarks that need a server: the emulator in a process of its own.

The emulator runs in a separate (spawned) process so that it never shares the GIL with the
client being measured; the benchmark asks it for ``stats()`` and quota changes over a pipe.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any

from google.oauth2.credentials import Credentials

from greycloud import GreyCloudConfig
from greycloud.testing import VertexEmulator

MODEL = "gemini-2.5-flash"


def _serve(connection: multiprocessing.connection.Connection, options: dict[str, Any]) -> None:
    emulator = VertexEmulator(accept_any_token=True, max_records=100, **options)
    with emulator:
        connection.send(emulator.base_url)
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
    """``with EmulatorProcess(rpm=..., tpm=...) as server:``; ``server.config()`` points at it."""

    def __init__(self, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, options), daemon=True)
        self._process.start()
        self.base_url: str = self._connection.recv()

    def config(self, **overrides: Any) -> GreyCloudConfig:
        values: dict[str, Any] = {
            "project_id": "test-project",
            "location": "us-central1",
            "endpoint": self.base_url,
            "api_version": "v1",
            "model": MODEL,
        }
        values.update(overrides)
        return GreyCloudConfig(**values)

    def _call(self, command: str, **arguments: Any) -> Any:
        self._connection.send((command, arguments))
        return self._connection.recv()

    def stats(self) -> Any:
        return self._call("stats")

    def reset(self) -> None:
        self._call("reset")

    def set_quota(self, **quota: Any) -> None:
        self._call("set_quota", **quota)

    def script_function_calls(self, steps: Any) -> None:
        self._call("script_function_calls", steps=steps)

    def stop(self) -> None:
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


def credentials() -> Credentials:
    """Offline credentials the emulator accepts (it lets any bearer token in)."""
    return Credentials(token="bench")


def prompt(tokens: int, rng: random.Random) -> str:
    """A prompt of exactly ``tokens`` tokens as both the emulator and greycloud count them."""
    words = []
    while sum(len(word) + 1 for word in words) < tokens * 4 - 8:
        words.append(rng.choice(("alpha", "bravo", "delta", "echo", "lima", "oscar")))
    text = " ".join(words)
    return (text + " " * (tokens * 4))[: tokens * 4]


def noisy_estimates(spread: float, seed: int = 7) -> Callable[[], None]:
    """Make greycloud's prompt-token estimate off by up to ``spread`` (e.g. 0.3), at random.

    Returns a function that undoes it.
    """
    from greycloud._core import request as _request
    from greycloud._core.token_estimate import PromptEstimate

    original = _request.prompt_estimate
    rng = random.Random(seed)

    def estimate(*args: Any) -> PromptEstimate:
        exact = original(*args)
        noisy = {
            modality: max(1, round(tokens * rng.uniform(1 - spread, 1 + spread)))
            for modality, tokens in exact.tokens.items()
        }
        return PromptEstimate(noisy, exact.unsized)

    _request.prompt_estimate = estimate  # type: ignore[assignment]

    def undo() -> None:
        _request.prompt_estimate = original  # type: ignore[assignment]

    return undo
