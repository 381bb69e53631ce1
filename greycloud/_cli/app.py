"""The ``greycloud`` typer application: commands, options and exit codes.

Exit codes: 0 everything done; 1 some lines failed for good, were skipped as invalid, or the
run stopped early (the summary says which); 2 bad input, usage or configuration (nothing was
sent); 130 interrupted by Ctrl-C (143 by SIGTERM) — rerun the same command to resume.
Results go to the output file (``run``) or stdout (``generate``, ``count-tokens``); progress,
problems and summaries go to stderr. The ``cache`` and ``batch`` groups live in resources.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.logging import RichHandler

from .._async.client import GreyCloudAsyncClient
from ..errors import AuthError, ConfigError
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ApiVersionOption,
    EmulatorOption,
    EndpointOption,
    ModelOption,
    fail,
    make_target,
    reported_errors,
    say,
    show_problems,
    stderr,
)
from .journal import JournalError, OutputJournal
from .progress import LogReporter, Reporter, RichReporter, RunTally, summary
from .prompts import PromptFile, PromptLine, read_prompts
from .resources import batch_app, cache_app
from .runner import BulkRunner, RunStopped, plan_run, until_signalled
from .target import Target, open_client

app = typer.Typer(
    name="greycloud",
    help="Gemini on Vertex AI from the command line: bulk generation under rate limits, "
    "one-off prompts, token counts, context caches, batch jobs and a local emulator.\n\n"
    "Settings come from GreyCloudConfig's environment variables (PROJECT_ID, LOCATION, "
    "USE_API_KEY, GOOGLE_API_KEY, API_KEY_FILE, SA_EMAIL, ...), with the options on top.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # joins wrapped docstring lines into paragraphs
    # Locals can hold API keys and tokens; never print them in a traceback.
    pretty_exceptions_show_locals=False,
)
app.add_typer(cache_app)
app.add_typer(batch_app)

# -- generation options (run, generate, count-tokens) ------------------------------------------

SystemOption = Annotated[
    str | None, typer.Option("--system", "-s", help="System instruction for every prompt.")
]
TemperatureOption = Annotated[
    float | None, typer.Option(min=0.0, max=2.0, help="Sampling temperature, 0 to 2.")
]
MaxOutputTokensOption = Annotated[
    int | None, typer.Option(min=1, help="Cap on output tokens per answer.")
]
MaxRetriesOption = Annotated[
    int, typer.Option(min=0, help="Retries per prompt for transient errors (429, 5xx, network).")
]


def _read_text_argument(value: str) -> str:
    """The argument itself, or all of stdin for ``-``."""
    text = sys.stdin.read() if value == "-" else value
    if not text.strip():
        raise typer.BadParameter("the text is empty")
    return text


@app.callback()
def _configure(
    context: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every retry and request detail.")
    ] = False,
) -> None:
    """Send greycloud's log records to stderr while a command runs."""
    # Through the progress bar's console, so a warning does not tear the live display; on
    # greycloud's logger only, and removed afterwards, so an embedding program's logging
    # (or a test run's) is left as it was.
    handler = RichHandler(console=stderr, show_path=False, show_time=stderr.is_terminal)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    logger = logging.getLogger("greycloud")
    previous_level = logger.level
    if verbose and logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)

    context.call_on_close(restore)


# -- run ------------------------------------------------------------------------------------------


@app.command()
def run(
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
    output_path: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="OUTPUT.jsonl", help="Results, one line per input id."
        ),
    ],
    model: ModelOption = None,
    system: SystemOption = None,
    temperature: TemperatureOption = None,
    max_output_tokens: MaxOutputTokensOption = None,
    rpm: Annotated[
        str | None,
        typer.Option(
            metavar="N|auto",
            help="Requests per minute per model, or auto: discover the rate a shared pool "
            "serves (Vertex AI's Dynamic Shared Quota).",
        ),
    ] = None,
    tpm: Annotated[
        str | None,
        typer.Option(
            metavar="N|auto",
            help="Input tokens per minute per model, or auto (no token limit of its own).",
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Requests in flight at once.")
    ] = None,
    max_retries: MaxRetriesOption = 5,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Run again the lines that failed for good in an earlier run (their old "
            "lines are removed from the output first).",
        ),
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Skip malformed input lines (listed on stderr) instead of stopping.",
        ),
    ] = False,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    log_interval: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds between progress lines when stderr is not a terminal."),
    ] = 10.0,
) -> None:
    """Generate an answer for every line of INPUT.jsonl into OUTPUT.jsonl, under rate limits.

    Each result is on disk before it is counted. Running the same command again resumes: ids
    already in the output are skipped (also after kill -9; a torn last line is repaired).
    Lines that failed for good stay failed until --retry-failed.
    """
    target = make_target(emulator, endpoint, api_version)
    prompts = _checked_prompts(input_path, skip_invalid)
    if output_path.resolve() == input_path.resolve():
        raise fail("the output file must not be the input file", EXIT_USAGE)
    overrides = {
        "model": model,
        "system_instruction": system,
        "temperature": temperature,
        "max_output_tokens": max_output_tokens,
        "rpm": _limit_option("--rpm", rpm),
        "tpm": _limit_option("--tpm", tpm),
        "max_concurrency": concurrency,
    }
    try:
        with OutputJournal(output_path) as journal:
            code = _run_journalled(
                prompts, journal, target, overrides, max_retries, retry_failed, log_interval
            )
    except JournalError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
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


def _discovered_rpm(client: GreyCloudAsyncClient) -> Callable[[], float | None] | None:
    """For a run with a discovered rate (rpm="auto"): reads the requests/min found so far."""
    config = client.config
    limits = [config.rpm, *((config.model_limits or {}).get(config.model, {}).values())]
    if "auto" not in limits:
        return None

    def read() -> float | None:
        rates = [m.rpm for m in client.rate_limiter.stats().models.values() if m.auto]
        return sum(rates) if rates else None

    return read


def _checked_prompts(path: Path, skip_invalid: bool) -> PromptFile:
    try:
        prompts = read_prompts(path)
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    if prompts.problems:
        show_problems(path, prompts.problems)
        if not skip_invalid:
            raise fail(
                f"{prompts.invalid_lines} invalid line(s) in {path}; nothing was sent. Fix "
                "them, or pass --skip-invalid to run the valid lines only.",
                EXIT_USAGE,
            )
        say(f"skipping {prompts.invalid_lines} invalid line(s)")
    return prompts


def _run_journalled(
    prompts: PromptFile,
    journal: OutputJournal,
    target: Target,
    overrides: dict[str, Any],
    max_retries: int,
    retry_failed: bool,
    log_interval: float,
) -> int:
    if journal.repaired_bytes:
        say(
            f"repaired {journal.path}: removed a torn last line ({journal.repaired_bytes} "
            "bytes) left by an interrupted run; that line runs again"
        )
    plan = plan_run(prompts.lines, journal.recorded, retry_failed)
    tally = RunTally(
        total=len(prompts.lines),
        already_done=plan.already_answered + plan.already_failed,
        already_failed=plan.already_failed,
    )
    say(_start_line(tally, len(plan.to_run), len(plan.retry_ids)))
    stopped: RunStopped | None = None
    received: int | None = None
    if plan.to_run:
        try:
            with open_client(target, **overrides) as client:
                # Only now, with a working config: the old failed lines make way for new ones.
                journal.drop_failed(plan.retry_ids)
                rpm = client.config.rpm
                tally.rpm = rpm if isinstance(rpm, int) else None  # "auto": no known pace
                tally.auto_rpm = _discovered_rpm(client)
                received, stopped = _run_with_progress(
                    client, journal, tally, plan.to_run, max_retries, log_interval
                )
        except (ConfigError, AuthError) as exc:
            raise fail(str(exc), EXIT_USAGE) from None

    say(summary(tally))
    if prompts.invalid_lines:
        say(f"{prompts.invalid_lines} invalid input line(s) were skipped (listed above)")
    if received is not None:
        say(
            f"interrupted; every finished line is saved in {journal.path}. Resume with:\n"
            f"  {_this_command()}"
        )
        return 128 + received
    if stopped is not None:
        say(f"stopped early: {stopped}\nwhen that is fixed, resume with:\n  {_this_command()}")
        return EXIT_FAILED
    if tally.failed or tally.already_failed or prompts.invalid_lines:
        return EXIT_FAILED
    return EXIT_OK


def _run_with_progress(
    client: GreyCloudAsyncClient,
    journal: OutputJournal,
    tally: RunTally,
    lines: Sequence[PromptLine],
    max_retries: int,
    log_interval: float,
) -> tuple[int | None, RunStopped | None]:
    reporter: Reporter = (
        RichReporter(stderr, tally)
        if stderr.is_terminal
        else LogReporter(stderr, tally, log_interval)
    )
    runner = BulkRunner(
        client,
        journal,
        tally,
        reporter,
        max_retries=max_retries,
        concurrency=client.config.max_concurrency,
    )
    with reporter:
        return asyncio.run(_run_lines(runner, client, lines))


async def _run_lines(
    runner: BulkRunner, client: GreyCloudAsyncClient, lines: Sequence[PromptLine]
) -> tuple[int | None, RunStopped | None]:
    """Run under the signal handlers; returns (signal received, run-stopping error)."""
    stopped: RunStopped | None = None

    async def work() -> None:
        nonlocal stopped
        try:
            await runner.run(lines)
        except RunStopped as exc:
            stopped = exc
        finally:
            await client.aclose()

    _, received = await until_signalled(work())
    return received, stopped


def _start_line(tally: RunTally, to_run: int, retrying: int) -> str:
    parts = [f"{to_run} of {tally.total} lines to run"]
    answered = tally.already_done - tally.already_failed
    if answered:
        parts.append(f"{answered} already answered")
    if tally.already_failed:
        parts.append(
            f"{tally.already_failed} failed earlier and kept (--retry-failed runs them again)"
        )
    if retrying:
        parts.append(f"{retrying} failed earlier and running again")
    return "; ".join(parts)


def _this_command() -> str:
    return shlex.join(["greycloud", *sys.argv[1:]])


# -- generate, count-tokens --------------------------------------------------------------------


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt, or - to read it from stdin.")],
    model: ModelOption = None,
    system: SystemOption = None,
    temperature: TemperatureOption = None,
    max_output_tokens: MaxOutputTokensOption = None,
    max_retries: MaxRetriesOption = 5,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
) -> None:
    """Stream the answer to one prompt to stdout."""
    target = make_target(emulator, endpoint, api_version)
    text = _read_text_argument(prompt)
    overrides = {
        "model": model,
        "system_instruction": system,
        "temperature": temperature,
        "max_output_tokens": max_output_tokens,
    }
    with reported_errors(), open_client(target, **overrides) as client:

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


@app.command("count-tokens")
def count_tokens(
    text: Annotated[str, typer.Argument(help="The text, or - to read it from stdin.")],
    model: ModelOption = None,
    system: SystemOption = None,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
) -> None:
    """Print how many input tokens TEXT is for the model."""
    target = make_target(emulator, endpoint, api_version)
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


@app.command("emulator")
def emulator_command(
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
) -> None:
    """Serve a local Vertex AI emulator in the foreground until Ctrl-C."""
    from ..testing import serve

    # Ctrl-C is how it stops, also in the instant before serve() starts waiting for it.
    with contextlib.suppress(KeyboardInterrupt):
        try:
            serve(port, rpm, tpm, latency, host=host)
        except RuntimeError as exc:  # the port is taken, or the host is not an address here
            raise fail(str(exc), EXIT_USAGE) from None


def main() -> None:
    """The console script ``greycloud``."""
    app(prog_name="greycloud")
