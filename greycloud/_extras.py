"""The one-line hint for a feature whose optional extra is not installed.

Every optional import (the CLI, the emulator, Redis, Cloud Storage) fails with the same
sentence: what needs which extra, what is missing, and the command that installs it.
"""

from __future__ import annotations

# The modules each extra brings that greycloud imports (see pyproject.toml).
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "cli": frozenset({"typer", "click", "rich", "aiohttp"}),
    "emulator": frozenset({"aiohttp"}),
    "redis": frozenset({"redis"}),
    "storage": frozenset({"google.cloud.storage", "google.api_core"}),
    "beam": frozenset({"apache_beam"}),
    "otel": frozenset({"opentelemetry"}),
}


def missing_extra(what: str, extra: str, missing: str | None) -> str:
    """``"<what> needs the '<extra>' extra (<missing> is not installed): pip install ..."``."""
    detail = f" ({missing} is not installed)" if missing else ""
    return f"{what} needs the '{extra}' extra{detail}: pip install 'greycloud[{extra}]'"


def is_missing_extra(error: ImportError, extra: str) -> bool:
    """Whether ``error`` is a module of ``extra`` that is not installed (and not a bug)."""
    name = error.name or ""
    return any(name == module or name.startswith(module + ".") for module in EXTRA_MODULES[extra])
