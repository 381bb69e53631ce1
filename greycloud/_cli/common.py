"""What every command shares: exit codes, the stderr console, messages and common options."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .prompts import InputProblem
from .target import Target

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
MAX_PROBLEMS_SHOWN = 50

# Created once and used for everything on stderr, so log records and the live progress bar
# share one console and do not garble each other.
stderr = Console(stderr=True, highlight=False)


def say(message: str) -> None:
    """A line on stderr, as it is (user data may hold [brackets] that rich would eat)."""
    stderr.print(message, markup=False, soft_wrap=True)


def fail(message: str, code: int) -> typer.Exit:
    say(f"greycloud: {message}")
    return typer.Exit(code)


def show_problems(path: Path, problems: Sequence[InputProblem]) -> None:
    say(f"problems in {path}:")
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        say(f"  {problem}")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        say(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more")


def make_target(emulator: bool, endpoint: str | None, api_version: str | None) -> Target:
    if emulator and endpoint is not None:
        raise typer.BadParameter("use either --emulator or --endpoint, not both", param_hint="")
    return Target(emulator=emulator, endpoint=endpoint, api_version=api_version)


# -- options shared by several commands ----------------------------------------------------------

ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Model id (default: the config's model).")
]
EmulatorOption = Annotated[
    bool,
    typer.Option(
        "--emulator",
        help="Run against a local Vertex AI emulator started in this process (no credentials).",
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        envvar="GREYCLOUD_ENDPOINT",
        help="Base URL to send requests to instead of Google's, e.g. a running "
        "`greycloud emulator`.",
    ),
]
ApiVersionOption = Annotated[
    str | None,
    typer.Option(envvar="GREYCLOUD_API_VERSION", help="API version in the URL, e.g. v1."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout instead of text, for scripts.")
]
