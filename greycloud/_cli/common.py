"""What every command shares: exit codes, the stderr console, messages and common options."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import google.auth.exceptions
import httpx2
import typer
import typer.core
from google.genai import errors as genai_errors
from rich.console import Console

from ..auth import LOGIN_COMMAND
from ..errors import (
    AuthError,
    BatchInputError,
    BucketNotFoundError,
    ConfigError,
    GreyCloudError,
    QuotaExhaustedError,
)
from .interrupts import interrupted_code
from .jsonl_input import InputProblem
from .target import Target

# One exit code per cause, the same for every command.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_QUOTA = 4
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_CODES = (
    (EXIT_OK, "done: everything was answered, listed, deleted or submitted"),
    (
        EXIT_FAILED,
        "some of the work failed: lines or batch requests that failed for good (now or in an "
        "earlier run) or were skipped as invalid, a batch job that failed or has not ended, "
        "caches that could not be deleted, or the service refused a request",
    ),
    (EXIT_USAGE, "bad input, usage or configuration; nothing was sent"),
    (
        EXIT_AUTH,
        "no usable credentials were found, or they were rejected; log in (or pass "
        "--access-token) and rerun",
    ),
    (EXIT_QUOTA, "a per-day quota is exhausted; rerun when it resets"),
    (EXIT_INTERRUPTED, f"interrupted by Ctrl-C ({EXIT_TERMINATED}: SIGTERM); rerun to resume"),
)
# For --help: a markdown list, since rich joins the lines of a paragraph.
EXIT_CODES_HELP = "**Exit codes:**\n\n" + "\n".join(
    f"* **{code}** {meaning}" for code, meaning in EXIT_CODES
)
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


def exit_code(exc: BaseException) -> int:
    """The exit code for an error that ends a command (see ``EXIT_CODES``)."""
    if isinstance(exc, (AuthError, google.auth.exceptions.RefreshError)):
        return EXIT_AUTH
    if isinstance(exc, QuotaExhaustedError):
        return EXIT_QUOTA
    if isinstance(exc, (ConfigError, BatchInputError, BucketNotFoundError)):
        return EXIT_USAGE
    return EXIT_FAILED


def problem_message(exc: BaseException) -> str:
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return credentials_problem(exc)
    return str(exc)


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
    except (ConfigError, BatchInputError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except (AuthError, QuotaExhaustedError, google.auth.exceptions.RefreshError) as exc:
        raise fail(problem_message(exc), exit_code(exc)) from None
    except Exception as exc:
        if isinstance(exc, _service_errors()):
            raise fail(str(exc) or type(exc).__name__, EXIT_FAILED) from None
        raise


def make_target(
    context: typer.Context,
    emulator: bool = False,
    endpoint: str | None = None,
    api_version: str | None = None,
    *,
    verbose: bool = False,
    access_token: str | None = None,
) -> Target:
    """Where the command sends its requests; also applies the global options given to it."""
    settings = global_settings(context, verbose)
    if emulator and endpoint is not None:
        if not _from_command_line(context, "endpoint"):
            # GREYCLOUD_ENDPOINT names the usual target; --emulator asks for another, once.
            endpoint = api_version = None
        else:
            raise typer.BadParameter("use either --emulator or --endpoint, not both", param_hint="")
    return Target(
        emulator=emulator,
        endpoint=endpoint,
        api_version=api_version,
        # Given after the command wins; then before it; then GREYCLOUD_ACCESS_TOKEN (read by both).
        access_token=(
            access_token
            if _from_command_line(context, "access_token")
            else settings.access_token or access_token
        ),
    )


def _from_command_line(context: typer.Context, name: str) -> bool:
    source = context.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


@dataclass
class GlobalSettings:
    """The options every command takes, before or after its name (-v, --access-token)."""

    log_handler: logging.Handler | None = None
    access_token: str | None = field(default=None, repr=False)

    def be_verbose(self) -> None:
        if self.log_handler is not None:
            self.log_handler.setLevel(logging.INFO)
        logger = logging.getLogger("greycloud")
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)


def global_settings(context: typer.Context, verbose: bool = False) -> GlobalSettings:
    """The settings the top-level options made; ``verbose`` given after the command too."""
    settings = context.obj if isinstance(context.obj, GlobalSettings) else GlobalSettings()
    if verbose:
        settings.be_verbose()
    return settings


def _plain_flags(params: list[Any]) -> list[Any]:
    for param in params:
        # typer shows a flag as "<bool>", which reads as if it took a value (--emulator true).
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(typer.core.TyperCommand):
    """A command whose --help shows flags as flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class Group(typer.core.TyperGroup):
    """A command group whose --help shows flags as flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


# -- options shared by several commands ----------------------------------------------------------

ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model id.", show_default="gemini-2.5-flash, the config's"),
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
        show_default="Google's",
        help="Base URL to send requests to instead of Google's, e.g. a running "
        "`greycloud emulator`.",
    ),
]
ApiVersionOption = Annotated[
    str | None,
    typer.Option(
        envvar="GREYCLOUD_API_VERSION",
        show_default="the SDK's",
        help="API version in the URL, e.g. v1.",
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log every retry and request detail on stderr.")
]
AccessTokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="GREYCLOUD_ACCESS_TOKEN",
        metavar="TOKEN",
        show_default=False,
        help="An OAuth access token to send as it is, instead of looking for credentials "
        "(e.g. the token `greycloud emulator` prints); never logged. Default: application "
        "default credentials, then the gcloud CLI.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout instead of text, for scripts.")
]
