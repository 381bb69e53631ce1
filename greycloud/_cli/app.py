"""The ``greycloud`` typer application: commands, options and exit codes.

Exit codes: one per cause, the same for every command (``common.EXIT_CODES``, also listed by
``--help``). Results go to the output file (``run``) or stdout (``generate``,
``count-tokens``); progress, problems and summaries go to stderr. The ``cache`` and ``batch``
groups live in resources.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler

from .._core.embedding import TASK_TYPES
from ..config import GreyCloudConfig
from .common import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    AccessTokenOption,
    ApiVersionOption,
    Command,
    EmulatorOption,
    EndpointOption,
    GlobalSettings,
    Group,
    ModelOption,
    VerboseOption,
    fail,
    global_settings,
    make_target,
    reported_errors,
    stderr,
)
from .embed import embed_lines
from .observability import OtelOption, PricingOption, exported_telemetry, load_pricing
from .resources import batch_app, cache_app
from .run_command import RunOptions, run_file
from .target import open_client

app = typer.Typer(
    name="greycloud",
    help="Gemini on Vertex AI from the command line: bulk generation and embeddings under rate "
    "limits, one-off prompts, token counts, context caches, batch jobs and a local emulator.\n\n"
    "Settings come from GreyCloudConfig's environment variables (PROJECT_ID, LOCATION, "
    "USE_API_KEY, GOOGLE_API_KEY, GREYCLOUD_ACCESS_TOKEN, GREYCLOUD_ENDPOINT, SA_EMAIL, ...), "
    "with the options on top. -v and --access-token go before or after the command.",
    no_args_is_help=True,
    add_completion=False,
    cls=Group,
    rich_markup_mode="markdown",  # joins wrapped docstring lines into paragraphs
    # Locals can hold API keys and tokens; never print them in a traceback.
    pretty_exceptions_show_locals=False,
)
app.add_typer(cache_app)
app.add_typer(batch_app)

# -- generation options (run, generate, count-tokens) ------------------------------------------

SystemOption = Annotated[
    str | None,
    typer.Option(
        "--system", "-s", help="System instruction for every prompt.", show_default="none"
    ),
]
TemperatureOption = Annotated[
    float | None,
    typer.Option(
        min=0.0, max=2.0, help="Sampling temperature, 0 to 2.", show_default="the model's"
    ),
]
MaxOutputTokensOption = Annotated[
    int | None,
    typer.Option(min=1, help="Cap on output tokens per answer.", show_default="the model's"),
]
MaxRetriesOption = Annotated[
    int, typer.Option(min=0, help="Retries per prompt for transient errors (429, 5xx, network).")
]


def _config_default(name: str) -> str:
    """A GreyCloudConfig field's default, for --help."""
    return str(next(f.default for f in dataclasses.fields(GreyCloudConfig) if f.name == name))


# -- bulk options (run, embed) -------------------------------------------------------------------

OutputOption = Annotated[
    Path,
    typer.Option("--output", "-o", metavar="OUTPUT.jsonl", help="Results, one line per input id."),
]
RpmOption = Annotated[
    str | None,
    typer.Option(
        metavar="N|auto",
        help="Requests per minute per model, or auto: discover the rate a shared pool "
        "serves (Vertex AI's Dynamic Shared Quota).",
        show_default=_config_default("rpm"),
    ),
]
TpmOption = Annotated[
    str | None,
    typer.Option(
        metavar="N|auto",
        help="Input tokens per minute per model, or auto (no token limit of its own).",
        show_default=_config_default("tpm"),
    ),
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        min=1, help="Requests in flight at once.", show_default=_config_default("max_concurrency")
    ),
]
RetryFailedOption = Annotated[
    bool,
    typer.Option(
        "--retry-failed",
        help="Run again the lines that failed for good in an earlier run (their old "
        "lines are removed from the output first).",
    ),
]
SkipInvalidOption = Annotated[
    bool,
    typer.Option(
        "--skip-invalid", help="Skip malformed input lines (listed on stderr) instead of stopping."
    ),
]
LogIntervalOption = Annotated[
    float,
    typer.Option(min=0.0, help="Seconds between progress lines when stderr is not a terminal."),
]


def _read_text_argument(value: str) -> str:
    """The argument itself, or all of stdin for ``-``."""
    text = sys.stdin.read() if value == "-" else value
    if not text.strip():
        raise typer.BadParameter("the text is empty")
    return text


@app.callback(epilog=EXIT_CODES_HELP)
def _configure(
    context: typer.Context,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Send greycloud's log records to stderr while a command runs."""
    # Through the progress bar's console, so a warning does not tear the live display; on
    # greycloud's logger only, and removed afterwards, so an embedding program's logging
    # (or a test run's) is left as it was.
    handler = RichHandler(console=stderr, show_path=False, show_time=stderr.is_terminal)
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("greycloud")
    previous_level = logger.level
    logger.addHandler(handler)
    # The commands read these (and their own -v/--access-token, given after their name).
    context.obj = GlobalSettings(log_handler=handler, access_token=access_token)
    if verbose:
        context.obj.be_verbose()

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)

    context.call_on_close(restore)


# -- run ------------------------------------------------------------------------------------------


@app.command(cls=Command, epilog=EXIT_CODES_HELP)
def run(
    context: typer.Context,
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT.jsonl",
            help='Prompts, one JSON object a line: {"id": ..., "prompt": "..."} or '
            '{"id": ..., "contents": [...]}, with optional model, system_instruction, '
            "temperature, top_p, top_k, max_output_tokens, seed, stop_sequences, "
            "presence_penalty, frequency_penalty, response_mime_type, thinking_level, metadata.",
        ),
    ],
    output_path: OutputOption,
    model: ModelOption = None,
    system: SystemOption = None,
    temperature: TemperatureOption = None,
    max_output_tokens: MaxOutputTokensOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    concurrency: ConcurrencyOption = None,
    max_retries: MaxRetriesOption = 5,
    retry_failed: RetryFailedOption = False,
    skip_invalid: SkipInvalidOption = False,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    log_interval: LogIntervalOption = 10.0,
    pricing: PricingOption = None,
    otel: OtelOption = False,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Generate an answer for every line of INPUT.jsonl into OUTPUT.jsonl, under rate limits.

    Each result is on disk before it is counted. Running the same command again resumes: ids
    already in the output are skipped (also after kill -9; a torn last line is repaired).
    Lines that failed for good stay failed until --retry-failed. The summary gives the tokens
    spent and their estimated cost (greycloud's pricing table, or --pricing FILE).
    """
    target = make_target(
        context, emulator, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    overrides = {
        "model": model,
        "system_instruction": system,
        "temperature": temperature,
        "max_output_tokens": max_output_tokens,
        "rpm": _limit_option("--rpm", rpm),
        "tpm": _limit_option("--tpm", tpm),
        "max_concurrency": concurrency,
    }
    options = RunOptions(
        max_retries, retry_failed, skip_invalid, log_interval, load_pricing(pricing)
    )
    with exported_telemetry(otel):
        code = run_file(input_path, output_path, target, overrides, options)
    raise typer.Exit(code)


# -- embed ----------------------------------------------------------------------------------------


def _task_type(value: str | None) -> str | None:
    if value is not None and value.upper() not in TASK_TYPES:
        raise typer.BadParameter(f"must be one of {', '.join(TASK_TYPES)}")
    return None if value is None else value.upper()


@app.command(cls=Command, epilog=EXIT_CODES_HELP)
def embed(
    context: typer.Context,
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT.jsonl",
            help='Texts, one JSON object a line: {"id": ..., "text": "..."} or '
            '{"id": ..., "contents": ...}, with optional task_type, title (with task_type '
            "RETRIEVAL_DOCUMENT) and metadata.",
        ),
    ],
    output_path: OutputOption,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Embedding model.",
            show_default=_config_default("embedding_model"),
        ),
    ] = None,
    task_type: Annotated[
        str | None,
        typer.Option(
            callback=_task_type,
            help="Task type for lines without one, e.g. RETRIEVAL_DOCUMENT or RETRIEVAL_QUERY.",
            show_default="none",
        ),
    ] = None,
    dimensions: Annotated[
        int | None,
        typer.Option(min=1, help="Length of each vector.", show_default="the model's"),
    ] = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    concurrency: ConcurrencyOption = None,
    max_retries: MaxRetriesOption = 5,
    retry_failed: RetryFailedOption = False,
    skip_invalid: SkipInvalidOption = False,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    log_interval: LogIntervalOption = 10.0,
    pricing: PricingOption = None,
    otel: OtelOption = False,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Embed every line of INPUT.jsonl into OUTPUT.jsonl, under rate limits.

    Lines are sent as many to a request as the model takes. Each vector is on disk before it
    is counted; running the same command again resumes where it stopped (also after kill -9).
    Lines that failed for good stay failed until --retry-failed. The summary gives the tokens
    spent and their estimated cost (greycloud's pricing table, or --pricing FILE).
    """
    target = make_target(
        context, emulator, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    overrides = {
        "embedding_model": model,
        "rpm": _limit_option("--rpm", rpm),
        "tpm": _limit_option("--tpm", tpm),
        "max_concurrency": concurrency,
    }
    options = RunOptions(
        max_retries, retry_failed, skip_invalid, log_interval, load_pricing(pricing)
    )
    kind = embed_lines(task_type, dimensions)
    with exported_telemetry(otel):
        code = run_file(input_path, output_path, target, overrides, options, kind)
    raise typer.Exit(code)


def _limit_option(name: str, value: str | None) -> int | str | None:
    """``--rpm``/``--tpm``: a positive whole number or "auto"."""
    if value is None or value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise fail(f"{name} must be a positive whole number or auto, got {value!r}", EXIT_USAGE)
    return number


# -- generate, count-tokens --------------------------------------------------------------------


@app.command(cls=Command, epilog=EXIT_CODES_HELP)
def generate(
    context: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The prompt, or - to read it from stdin.")],
    model: ModelOption = None,
    system: SystemOption = None,
    temperature: TemperatureOption = None,
    max_output_tokens: MaxOutputTokensOption = None,
    max_retries: MaxRetriesOption = 5,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    otel: OtelOption = False,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Stream the answer to one prompt to stdout."""
    target = make_target(
        context, emulator, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    text = _read_text_argument(prompt)
    overrides = {
        "model": model,
        "system_instruction": system,
        "temperature": temperature,
        "max_output_tokens": max_output_tokens,
    }
    with reported_errors(), exported_telemetry(otel), open_client(target, **overrides) as client:

        async def stream() -> None:
            try:
                pieces = await client.generate_with_retry(
                    text, max_retries=max_retries, streaming=True
                )
                async for piece in pieces:
                    sys.stdout.write(piece if isinstance(piece, str) else piece.text or "")
                    sys.stdout.flush()
            finally:
                await client.aclose()
            sys.stdout.write("\n")

        asyncio.run(stream())


@app.command("count-tokens", cls=Command, epilog=EXIT_CODES_HELP)
def count_tokens(
    context: typer.Context,
    text: Annotated[str, typer.Argument(help="The text, or - to read it from stdin.")],
    model: ModelOption = None,
    system: SystemOption = None,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Print how many input tokens TEXT is for the model."""
    target = make_target(
        context, emulator, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    contents = _read_text_argument(text)
    with reported_errors(), open_client(target, model=model, system_instruction=system) as client:

        async def count() -> int:
            try:
                return await client.count_tokens(contents)
            finally:
                await client.aclose()

        tokens = asyncio.run(count())
    typer.echo(tokens)


# -- emulator -----------------------------------------------------------------------------------


@app.command("emulator", cls=Command, epilog=EXIT_CODES_HELP)
def emulator_command(
    context: typer.Context,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    rpm: Annotated[
        int | None, typer.Option(min=0, help="Requests per minute per model (default: no limit).")
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option(min=0, help="Input tokens per minute per model (default: no limit)."),
    ] = None,
    latency: Annotated[float, typer.Option(min=0.0, help="Seconds before every answer.")] = 0.0,
    capacity: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Requests per second each model's hidden shared pool serves, as under Vertex "
            "AI's Dynamic Shared Quota: the excess gets 429 RESOURCE_EXHAUSTED (try --rpm auto "
            "against it). Default: no pool.",
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Serve a local Vertex AI emulator in the foreground until Ctrl-C.

    It prints the environment to point greycloud at it (endpoint, API version, project and an
    access token it accepts) and accepts any bearer token, so real tools work against it too.
    """
    global_settings(context, verbose)
    from ..testing import serve

    # Ctrl-C is how it stops, also in the instant before serve() starts waiting for it.
    with contextlib.suppress(KeyboardInterrupt):
        try:
            serve(port, rpm, tpm, latency, capacity=capacity, host=host)
        except RuntimeError as exc:  # the port is taken, or the host is not an address here
            raise fail(str(exc), EXIT_USAGE) from None


def main() -> None:
    """The console script ``greycloud``."""
    app(prog_name="greycloud")
