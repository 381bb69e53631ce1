"""The ``cache`` and ``batch`` command groups: context caches and batch prediction jobs.

Both use the sync classes (``GreyCloudCache``, ``GreyCloudBatch``): each command is a few
service calls in a row, with nothing to overlap, and a blocking wait lets Ctrl-C simply stop
it. Exit codes as elsewhere (``common.EXIT_CODES``). Names and JSON go to stdout, everything
else to stderr.
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from google.genai import errors as genai_errors
from google.genai import types
from rich.console import Console
from rich.table import Table

from .._batch_progress import describe, job_state
from .._core.batch_format import BatchResult, check_jsonl, parse_predictions
from .._core.cache_rules import model_id
from .._core.pricing import Pricing
from .._core.usage import BATCH, UsageMeter
from .._sync.batch import GreyCloudBatch
from .._sync.cache import GreyCloudCache
from .common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    AccessTokenOption,
    ApiVersionOption,
    Command,
    EmulatorOption,
    EndpointOption,
    Group,
    JsonOption,
    ModelOption,
    VerboseOption,
    fail,
    make_target,
    reported_errors,
    say,
    show_problems,
    stderr,
)
from .jsonl_input import InputProblem
from .observability import PricingOption, load_pricing, usage_summary
from .results import batch_line
from .target import Target, open_config

cache_app = typer.Typer(
    name="cache",
    help="List and delete context caches.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    cls=Group,
)
batch_app = typer.Typer(
    name="batch",
    help="Batch prediction jobs: submit a JSONL file of requests, follow the job, download "
    "the answers. Input and results live in Cloud Storage (the `storage` extra); "
    "STORAGE_EMULATOR_HOST points google-cloud-storage at an emulator.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    cls=Group,
)

_ENDED = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
    }
)
_JOB_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/batchPredictionJobs/[^/]+")
_MISSING = "-"


class ResultsFormat(enum.StrEnum):
    results = "results"
    predictions = "predictions"


def _time(value: datetime.datetime | None, timespec: str = "auto") -> str | None:
    return None if value is None else value.isoformat(timespec=timespec)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


# -- cache ----------------------------------------------------------------------------------------


@contextmanager
def _caches(target: Target) -> Iterator[GreyCloudCache]:
    with (
        open_config(target) as resolved,
        GreyCloudCache(resolved.config, credentials=resolved.credentials) as caches,
    ):
        yield caches


@cache_app.command("list", cls=Command, epilog=EXIT_CODES_HELP)
def cache_list(
    context: typer.Context,
    json_output: JsonOption = False,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """List the project's context caches: name, display name, model, expiry time and tokens.

    On a terminal a table; otherwise one tab-separated line per cache (- for a missing
    value). --json prints every field, with the seconds left before each cache expires.
    """
    target = make_target(
        context, emulator, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    with reported_errors(), _caches(target) as caches:
        infos = [caches.get_cache_info(cache) for cache in caches.list_caches()]
    if json_output:
        _print_json(infos)
        return
    if not infos:
        say("no context caches")
        return
    rows = [
        [
            info["name"] or _MISSING,
            info["display_name"] or _MISSING,
            model_id(info["model"]) if info["model"] else _MISSING,
            _time(info["expire_time"], "seconds") or _MISSING,
            _MISSING if info["total_token_count"] is None else str(info["total_token_count"]),
        ]
        for info in infos
    ]
    stdout = Console(highlight=False)
    if not stdout.is_terminal:
        for row in rows:
            typer.echo("\t".join(row))
        return
    table = Table("name", "display name", "model", "expires", "tokens")
    for row in rows:
        table.add_row(*row)
    stdout.print(table)


NamesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="NAME", help="Caches to delete, by name as `greycloud cache list` shows it."
    ),
]


@cache_app.command("delete", cls=Command, epilog=EXIT_CODES_HELP)
def cache_delete(
    context: typer.Context,
    names: NamesArgument = None,
    all_caches: Annotated[
        bool, typer.Option("--all", help="Delete every cache (or every --filter match).")
    ] = False,
    name_filter: Annotated[
        str | None,
        typer.Option(
            "--filter", metavar="TEXT", help="With --all: only caches whose display name has TEXT."
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before deleting with --all.")
    ] = False,
    emulator: EmulatorOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Delete the caches NAME..., or with --all every cache (whose display name contains
    --filter TEXT, if given).

    --all asks first on a terminal; elsewhere it needs --yes. Reports how many were deleted;
    exits 1 when any could not be.
    """
    if bool(names) == all_caches:
        raise typer.BadParameter("name the caches to delete, or pass --all", param_hint="")
    if name_filter is not None and not all_caches:
        raise typer.BadParameter("--filter goes with --all", param_hint="")
    target = make_target(
        context, emulator, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    with reported_errors(), _caches(target) as caches:
        chosen = list(names or [])
        if all_caches:
            chosen = _matching(caches, name_filter)
            if not chosen:
                say("no caches to delete")
                return
            if not yes and not _interactive():
                # A script never deletes everything by accident: it must say so.
                raise fail(
                    f"--all would delete {len(chosen)} cache(s) without asking; "
                    "pass --yes to confirm",
                    EXIT_USAGE,
                )
            if not yes and not _confirmed(chosen, name_filter):
                raise fail("nothing was deleted", EXIT_FAILED)
        deleted = 0
        for name in chosen:
            try:
                caches.delete_cache(name)
            except genai_errors.APIError as exc:
                say(f"cannot delete {name}: {exc}")
                continue
            deleted += 1
    not_deleted = len(chosen) - deleted
    say(f"deleted {deleted} cache(s)" + (f"; {not_deleted} not deleted" if not_deleted else ""))
    if not_deleted:
        raise typer.Exit(EXIT_FAILED)


def _matching(caches: GreyCloudCache, name_filter: str | None) -> list[str]:
    # Listed here rather than with delete_all_caches, so that exactly the caches the user
    # agreed to are deleted, not ones created after the question.
    return [
        cache.name
        for cache in caches.list_caches()
        if cache.name and (name_filter is None or name_filter in (cache.display_name or ""))
    ]


def _interactive() -> bool:
    """Whether someone can answer a question (scripts and pipes are not asked)."""
    return sys.stdin.isatty()


def _confirmed(names: list[str], name_filter: str | None) -> bool:
    which = f" whose display name contains {name_filter!r}" if name_filter is not None else ""
    for name in names[:10]:
        say(f"  {name}")
    if len(names) > 10:
        say(f"  ... and {len(names) - 10} more")
    return typer.confirm(f"Delete these {len(names)} cache(s){which}?", err=True)


# -- batch ---------------------------------------------------------------------------------------


def _job_name(value: str) -> str:
    if value.isdigit() or _JOB_NAME.fullmatch(value):
        return value
    raise typer.BadParameter(
        "give the job's full name (projects/P/locations/L/batchPredictionJobs/ID, as "
        "`greycloud batch submit` prints it) or its numeric ID"
    )


JobArgument = Annotated[
    str,
    typer.Argument(
        metavar="JOB", callback=_job_name, help="The job's full name, or its numeric ID."
    ),
]
FormatOption = Annotated[
    ResultsFormat,
    typer.Option(
        "--format",
        help="results: one line per request, shaped like `greycloud run` output (id, model, "
        "text, finish_reason, usage, error). predictions: Vertex AI's predictions.jsonl as is.",
    ),
]
PollIntervalOption = Annotated[
    float | None,
    typer.Option(min=0.01, help="Seconds between status checks while waiting (default 30)."),
]
BatchOutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="FILE", help="Where to write the job's results."),
]


@contextmanager
def _batches(target: Target, **overrides: Any) -> Iterator[GreyCloudBatch]:
    with (
        open_config(target, **overrides) as resolved,
        GreyCloudBatch(resolved.config, credentials=resolved.credentials) as batch,
    ):
        yield batch


@batch_app.command("submit", cls=Command, epilog=EXIT_CODES_HELP)
def batch_submit(
    context: typer.Context,
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT.jsonl",
            help='Requests, one JSON object a line: {"key": ID, "request": {"contents": '
            '[...], "generationConfig": {...}, ...}}, or the request itself with an optional '
            '"key" (default request-<line - 1>).',
        ),
    ],
    model: ModelOption = None,
    bucket: Annotated[
        str | None,
        typer.Option(
            help="Cloud Storage bucket for the input and results (default: BATCH_GCS_BUCKET)."
        ),
    ] = None,
    results_prefix: Annotated[
        str | None,
        typer.Option(
            help="Where the results go: a path in the bucket or a gs:// URI "
            "(default: next to the uploaded input)."
        ),
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="A name for the job.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the job to end, showing its progress.")
    ] = False,
    output_path: BatchOutputOption = None,
    output_format: FormatOption = ResultsFormat.results,
    poll_interval: PollIntervalOption = None,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    pricing: PricingOption = None,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Check INPUT.jsonl, upload it and start a batch prediction job; prints the job's name.

    Every line is checked first: problems are listed with their line numbers and nothing is
    uploaded. With --wait the command follows the job until it ends (Ctrl-C stops waiting,
    not the job) and, given -o FILE, downloads the results. Exits 1 when the job fails or
    any request got no answer.
    """
    if output_path is not None and not wait:
        raise typer.BadParameter("-o downloads the results when the job ends: add --wait")
    target = make_target(
        context, False, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    prices = load_pricing(pricing)
    requests = _checked_requests(input_path, model)
    overrides = {"model": model, "batch_gcs_bucket": bucket, "batch_poll_interval": poll_interval}
    with reported_errors(), open_config(target, **overrides) as resolved:
        config = resolved.config
        if not (config.batch_gcs_bucket or config.gcs_bucket):
            raise fail(
                "no Cloud Storage bucket for the batch input and results: pass --bucket or "
                "set BATCH_GCS_BUCKET; nothing was uploaded",
                EXIT_USAGE,
            )
        with GreyCloudBatch(config, credentials=resolved.credentials) as batch:
            job = batch.create_batch_job(
                requests, results_prefix=results_prefix, display_name=display_name
            )
            name = job.name or ""
            typer.echo(name)
            destination = job.dest.gcs_uri if job.dest is not None else None
            say(f"batch job {name}: {len(requests)} request(s), results under {destination}")
            if not wait:
                say(f"follow it with: greycloud batch status {name}")
                return
            done = _wait(batch, name)
            if output_path is not None:
                raise typer.Exit(_download(batch, done, output_path, output_format, prices))


def _checked_requests(path: Path, model: str | None) -> list[dict[str, Any]]:
    """The input lines of ``path``, checked as ``GreyCloudBatch`` checks them; unlike the
    library, which stops at the first bad line, every problem is listed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise fail(f"cannot read {path}: {reason}", EXIT_USAGE) from None
    # The model only matters for InlinedRequest objects, which a JSON line cannot be.
    lines, problems = check_jsonl(text, model or "")
    if problems:
        show_problems(path, [InputProblem(number, reason) for number, reason in problems])
        raise fail(f"{len(problems)} invalid line(s) in {path}; nothing was uploaded", EXIT_USAGE)
    return lines


def _wait(batch: GreyCloudBatch, name: str) -> types.BatchJob:
    """Follow the job until it succeeds (``BatchJobFailedError`` when it does not)."""
    live = stderr.is_terminal

    def changed(job: types.BatchJob) -> None:
        if not live:  # on a terminal the live line shows it
            say(describe(job))

    try:
        done = batch.monitor_batch_job(name, callback=changed, progress=live)
    except KeyboardInterrupt:
        raise fail(
            f"stopped waiting; batch job {name} keeps running. Follow it with:\n"
            f"  greycloud batch status {name}\nor stop it with:\n  greycloud batch cancel {name}",
            EXIT_INTERRUPTED,
        ) from None
    if live:
        say(describe(done))
    return done


def _download(
    batch: GreyCloudBatch,
    job: types.BatchJob,
    path: Path,
    output_format: ResultsFormat,
    pricing: Pricing,
) -> int:
    """Write the job's results to ``path`` (whole or not at all); returns the exit code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written next to the target and renamed over it, so an interrupted download never leaves
    # a short file that looks complete.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        results: list[BatchResult]
        if output_format is ResultsFormat.predictions:
            batch.download_batch_results(job, partial)
            results = parse_predictions(partial.read_text(encoding="utf-8"))
        else:
            results = list(batch.iter_batch_results(job))
            model = job.model or batch.config.model
            lines = (json.dumps(batch_line(r, model), ensure_ascii=False) for r in results)
            partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    failed = sum(1 for result in results if result.error is not None)
    say(
        f"wrote {len(results)} result(s) to {path}: {len(results) - failed} answered, "
        f"{failed} failed"
    )
    meter = UsageMeter()
    model = (job.model or batch.config.model).rsplit("/", 1)[-1]
    for result in results:
        if result.response is not None:
            meter.add(model, result.response.usage_metadata, mode=BATCH)
    spent = usage_summary(meter, pricing)
    if spent is not None:
        say(spent)
    return EXIT_FAILED if failed else 0


def _job_info(job: types.BatchJob) -> dict[str, Any]:
    stats = job.completion_stats
    output = job.output_info.gcs_output_directory if job.output_info is not None else None
    if not output and job.dest is not None:
        output = job.dest.gcs_uri
    error = None
    if job.error is not None:
        error = {"code": job.error.code, "message": job.error.message}
    return {
        "name": job.name,
        "display_name": job.display_name,
        "state": job_state(job),
        "model": job.model,
        "succeeded": stats.successful_count if stats is not None else None,
        "failed": stats.failed_count if stats is not None else None,
        "incomplete": stats.incomplete_count if stats is not None else None,
        "input": list(job.src.gcs_uri or []) if job.src is not None else [],
        "output": output,
        "create_time": _time(job.create_time),
        "start_time": _time(job.start_time),
        "end_time": _time(job.end_time),
        "error": error,
    }


@batch_app.command("status", cls=Command, epilog=EXIT_CODES_HELP)
def batch_status(
    context: typer.Context,
    job: JobArgument,
    json_output: JsonOption = False,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Show a batch job's state, request counts and where its input and results are."""
    target = make_target(
        context, False, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    with reported_errors(), _batches(target) as batch:
        info = _job_info(batch.get_batch_job(job))
    if json_output:
        _print_json(info)
        return
    counts = (
        f"{info['succeeded'] or 0} succeeded, {info['failed'] or 0} failed, "
        f"{info['incomplete'] or 0} incomplete"
    )
    rows = [
        ("name", info["name"]),
        ("display name", info["display_name"]),
        ("state", info["state"].removeprefix("JOB_STATE_")),
        ("model", model_id(info["model"]) if info["model"] else None),
        ("requests", counts),
        ("input", ", ".join(info["input"]) or None),
        ("output", info["output"]),
        ("created", info["create_time"]),
        ("ended", info["end_time"]),
        ("error", info["error"] and info["error"]["message"]),
    ]
    for label, value in rows:
        if value:
            typer.echo(f"{label + ':':<14}{value}")


@batch_app.command("download", cls=Command, epilog=EXIT_CODES_HELP)
def batch_download(
    context: typer.Context,
    job: JobArgument,
    output_path: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="FILE", help="Where to write the job's results."),
    ],
    output_format: FormatOption = ResultsFormat.results,
    wait: Annotated[
        bool, typer.Option("--wait", help="First wait for the job to end, showing its progress.")
    ] = False,
    poll_interval: PollIntervalOption = None,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    pricing: PricingOption = None,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Write a finished job's results to FILE: one line per request (--format results, the
    default) or Vertex AI's own prediction lines (--format predictions), then the tokens they
    used and their estimated cost at batch prices (greycloud's table, or --pricing FILE).

    Exits 1 when the job has not ended (see --wait) or any request got no answer.
    """
    target = make_target(
        context, False, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    prices = load_pricing(pricing)
    with reported_errors(), _batches(target, batch_poll_interval=poll_interval) as batch:
        current = _wait(batch, job) if wait else batch.get_batch_job(job)
        state = job_state(current)
        if state not in _ENDED:
            raise fail(
                f"batch job {job} is {state.removeprefix('JOB_STATE_')} and has no results "
                f"yet; wait for it with: greycloud batch download {job} -o {output_path} --wait",
                EXIT_FAILED,
            )
        code = _download(batch, current, output_path, output_format, prices)
    raise typer.Exit(code)


@batch_app.command("cancel", cls=Command, epilog=EXIT_CODES_HELP)
def batch_cancel(
    context: typer.Context,
    job: JobArgument,
    endpoint: EndpointOption = None,
    api_version: ApiVersionOption = None,
    verbose: VerboseOption = False,
    access_token: AccessTokenOption = None,
) -> None:
    """Ask the service to stop a batch job (it moves to CANCELLING, then CANCELLED)."""
    target = make_target(
        context, False, endpoint, api_version, verbose=verbose, access_token=access_token
    )
    with reported_errors(), _batches(target) as batch:
        batch.cancel_batch_job(job)
    say(f"cancelling batch job {job}; `greycloud batch status {job}` shows when it has stopped")
