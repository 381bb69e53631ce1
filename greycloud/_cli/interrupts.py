"""SIGINT and SIGTERM while the command starts up: a message and an exit code, not a traceback.

Kept free of heavy imports: the console script installs this before it imports the rest of
the command line (a second or so on a cold start). During a run, ``runner.until_signalled``
takes over and stops the workers cleanly.
"""

from __future__ import annotations

import signal

_received: list[int] = []


def raise_on_signals() -> None:
    """Make SIGINT and SIGTERM raise ``KeyboardInterrupt``, remembering which came. For the
    console script only: a test process or an embedding program keeps its own handlers."""

    def interrupt(number: int, frame: object) -> None:
        _received.append(number)
        raise KeyboardInterrupt

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, interrupt)


def interrupted_code() -> int:
    """The exit code of an interrupted command: 128 + the signal (130 for Ctrl-C)."""
    return 128 + (_received[-1] if _received else signal.SIGINT)


def signal_received() -> bool:
    return bool(_received)
