"""Shared by the limiter benchmarks that need a server: the emulator in a process of its own.

The emulator runs in a separate (spawned) process (``greycloud.testing.EmulatorProcess``) so
that it never shares the GIL with the client being measured.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from google.oauth2.credentials import Credentials

from greycloud.testing import EmulatorProcess

__all__ = [
    "MODEL",
    "EmulatorProcess",
    "credentials",
    "local_redis",
    "noisy_estimates",
    "prompt",
]

MODEL = "gemini-2.5-flash"  # the config's default model


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """A throw-away ``redis-server`` on a free port, no persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("needs redis-server (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as directory:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
        redis = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
        )
        try:
            time.sleep(0.5)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            redis.terminate()
            redis.wait()


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
