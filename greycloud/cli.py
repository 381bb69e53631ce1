"""The ``greycloud`` command (``python -m greycloud.cli`` runs it too); see ``greycloud._cli``."""

from __future__ import annotations

from ._cli.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
