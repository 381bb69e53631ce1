"""The ``greycloud`` command (``python -m greycloud.cli`` runs it too); see ``greycloud._cli``.

Without the ``cli`` extra the command prints one line naming it (no traceback) and exits 2.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ._cli.interrupts import interrupted_code, raise_on_signals, signal_received
from ._extras import is_missing_extra, missing_extra


def main() -> None:
    """The console script ``greycloud``."""
    raise_on_signals()  # before the slow imports, so a Ctrl-C there is no traceback either
    try:
        try:
            from ._cli.app import main as run_app
        except ImportError as exc:
            if not is_missing_extra(exc, "cli"):
                raise
            print("greycloud: " + missing_extra("the command", "cli", exc.name), file=sys.stderr)
            raise SystemExit(2) from None
        run_app()
    except KeyboardInterrupt:  # while importing, before the command could catch it
        sys.stderr.write("greycloud: interrupted\n")
        _exit(interrupted_code())
    except SystemExit as exc:
        if not signal_received():
            raise
        # The interpreter would turn an exit after an interrupted import into death by
        # SIGINT (it marks the KeyboardInterrupt as unhandled); keep the code the command chose.
        _exit(exc.code if isinstance(exc.code, int) else 1)


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def __getattr__(name: str) -> Any:
    # ``app`` is imported on first use, so that main() can set up its signals first.
    if name == "app":
        from ._cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["main"]

if __name__ == "__main__":
    main()
