"""What every command shares: exit codes, the stderr console, messages and common options."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import aiohttp
import google.auth.exceptions
import httpx2
import typer
from google.genai import errors as genai_errors
from rich.console import Console

from ..auth import LOGIN_COMMAND
from ..errors import AuthError, BatchInputError, BucketNotFoundError, ConfigError, GreyCloudError
from .interrupts import interrupted_code
from .jsonl_input import InputProblem
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


def credentials_problem(exc: google.auth.exceptions.RefreshError) -> str:
    """What to tell the user when the credentials could not get a token."""
    return (
        f"the credentials could not be refreshed ({exc}); log in with {LOGIN_COMMAND}, "
        "or use an API key (USE_API_KEY=1 and GOOGLE_API_KEY)"
    )


def _service_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the service (Vertex AI or Cloud Storage) refused or was unreachable."""
    kinds: list[type[BaseException]] = [
        GreyCloudError,
        genai_errors.APIError,
        httpx2.HTTPError,  # the sync SDK's transport
        aiohttp.ClientError,  # the async SDK's transport
        google.auth.exceptions.GoogleAuthError,  # e.g. the token endpoint was unreachable
        OSError,  # requests' connection errors, and writing an output file
    ]
    try:
        # Only with the storage extra, which only batch commands need.
        from google.api_core.exceptions import GoogleAPIError
    except ImportError:  # pragma: no cover - depends on the installed extras
        pass
    else:
        kinds.append(GoogleAPIError)
    return tuple(kinds)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn the library's and the service's errors into a message and the exit code they mean."""
    try:
        yield
    except KeyboardInterrupt:
        raise fail("interrupted", interrupted_code()) from None
    except BucketNotFoundError as exc:
        # The library's message names its bucket_name argument; here it is --bucket.
        raise fail(
            f"Cloud Storage bucket {exc.bucket!r} does not exist or these credentials cannot "
            f"see it; create it (gcloud storage buckets create gs://{exc.bucket}) or pass "
            "another --bucket. Nothing was uploaded.",
            EXIT_USAGE,
        ) from None
    except (ConfigError, AuthError, BatchInputError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except google.auth.exceptions.RefreshError as exc:
        raise fail(credentials_problem(exc), EXIT_USAGE) from None
    except Exception as exc:
        if isinstance(exc, _service_errors()):
            raise fail(str(exc) or type(exc).__name__, EXIT_FAILED) from None
        raise


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
