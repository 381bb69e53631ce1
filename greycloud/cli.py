"""The ``greycloud`` command (``python -m greycloud.cli`` runs it too); see ``greycloud._cli``.

Without the ``cli`` extra the command prints one line naming it (no traceback) and exits 2.
"""

from __future__ import annotations

import sys

from ._extras import is_missing_extra, missing_extra

try:
    from ._cli.app import app, main
except ImportError as exc:
    if not is_missing_extra(exc, "cli"):
        raise
    _missing = exc.name

    def main() -> None:  # the console script's entry point, in place of the real one
        print("greycloud: " + missing_extra("the command", "cli", _missing), file=sys.stderr)
        raise SystemExit(2)


__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
