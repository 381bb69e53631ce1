"""Shared by the limiter benchmarks that need a server: the emulator in a process of its own.

The emulator runs in a separate (spawned) process (``greycloud.testing.EmulatorProcess``) so
that it never shares the GIL with the client being measured.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from google.oauth2.credentials import Credentials

from greycloud.testing import EmulatorProcess
from greycloud.testing.redis_server import RedisServer

__all__ = [
    "MODEL",
    "EmulatorProcess",
    "credentials",
    "local_redis",
    "noisy_estimates",
    "prompt",
]

MODEL = "gemini-2.5-flash"  # the config's default model


def local_redis() -> RedisServer:
    """A throw-away ``redis-server`` on a free port (``with local_redis() as redis:``)."""
    try:
        return RedisServer()
    except FileNotFoundError as exc:
        raise SystemExit(f"this benchmark needs Redis: {exc}") from None


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
