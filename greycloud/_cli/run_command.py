"""What ``greycloud run`` does once typer has parsed its options: check, plan, run, report.

The order carries the guarantees: the configuration first, then every input line is checked
(a first streaming pass) before the output is touched, then the output is opened and locked,
and only then is anything sent; workers take lines from a second pass over the input, so
memory does not grow with the file.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import auth
from .._async.client import GreyCloudAsyncClient
from .._core.pricing import Pricing
from ..config import GreyCloudConfig
from ..errors import AuthError, ConfigError
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    exit_code,
    fail,
    say,
    show_problems,
    stderr,
)
from .group_commit import GroupCommit
from .interrupts import interrupted_code
from .journal import JournalError, JournalWriteError, OutputJournal
from .jsonl_input import InputScan, LineId, Parse, scan, stream
from .observability import usage_summary
from .progress import LogReporter, Reporter, RichReporter, RunTally, summary
from .prompts import PromptLine, checked_with, line_id, parse_checked_line, token_check
from .runner import BulkRunner, RunPlan, RunStopped, plan_run, until_signalled
from .target import Target, open_config


@dataclass(frozen=True)
class RunOptions:
    max_retries: int
    retry_failed: bool
    skip_invalid: bool
    log_interval: float
    pricing: Pricing | None = None  # for the tokens-and-cost line (None: no such line)


# Builds the runner of a bulk command once its client, output, tally and reporter exist.
RunnerFactory = Callable[
    [GreyCloudAsyncClient, GroupCommit, RunTally, Reporter, RunOptions], BulkRunner
]


def _prompt_runner(
    client: GreyCloudAsyncClient,
    output: GroupCommit,
    tally: RunTally,
    reporter: Reporter,
    options: RunOptions,
) -> BulkRunner:
    return BulkRunner(
        client,
        output,
        tally,
        reporter,
        max_retries=options.max_retries,
        concurrency=client.config.max_concurrency,
    )


@dataclass(frozen=True)
class LineKind:
    """What a bulk command's input lines are and how they are sent: ``check(config)`` parses
    and checks a line (the first pass; raises ``ConfigError`` for a bad command setting),
    ``reparse`` parses a line the first pass found valid, ``runner`` sends them."""

    check: Callable[[GreyCloudConfig], Parse[PromptLine]]
    reparse: Parse[PromptLine]
    runner: RunnerFactory


# ``greycloud run``: prompts, each checked against its model's token quota.
PROMPT_LINES = LineKind(
    lambda config: checked_with(token_check(config)), parse_checked_line, _prompt_runner
)


@dataclass(frozen=True)
class _Input:
    """The input file, how its lines are checked, and what the first pass found."""

    path: Path
    kind: LineKind
    checked: InputScan

    def lines(self) -> Iterator[PromptLine]:
        return stream(self.path, self.kind.reparse, self.checked.invalid)

    def ids_among(self, candidates: set[LineId]) -> set[LineId]:
        return {line.id for line in self.lines() if line.id in candidates}


def run_file(
    input_path: Path,
    output_path: Path,
    target: Target,
    overrides: dict[str, Any],
    options: RunOptions,
    kind: LineKind = PROMPT_LINES,
) -> int:
    """Run every line of ``input_path`` into ``output_path``; returns the exit code.

    Every failure is one line on stderr and an exit code, never a traceback: bad settings or
    input (2), an output that cannot be written (1), a signal before the run began (130/143).
    """
    try:
        if output_path.resolve() == input_path.resolve():
            raise fail("the output file must not be the input file", EXIT_USAGE)
        with open_config(target, **overrides) as resolved:
            parse = kind.check(resolved.config)
            source = _Input(input_path, kind, _checked(input_path, parse, options.skip_invalid))
            with OutputJournal(output_path) as journal:
                return _run_journalled(
                    source, journal, resolved.config, resolved.credentials, options
                )
    except (ConfigError, AuthError) as exc:
        raise fail(str(exc), exit_code(exc)) from None
    except JournalWriteError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except JournalError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except KeyboardInterrupt:  # SIGINT or SIGTERM before the run's own handlers were in place
        raise fail(
            f"interrupted before the run started; nothing in {output_path} was lost",
            interrupted_code(),
        ) from None


def _checked(path: Path, parse: Parse[PromptLine], skip_invalid: bool) -> InputScan:
    try:
        checked = scan(path, parse, line_id)
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if checked.problems:
        show_problems(path, checked.problems)
        if not skip_invalid:
            raise fail(
                f"{checked.invalid_lines} invalid line(s) in {path}; nothing was sent. Fix "
                "them, or pass --skip-invalid to run the valid lines only.",
                EXIT_USAGE,
            )
        say(f"skipping {checked.invalid_lines} invalid line(s)")
    return checked


def _run_journalled(
    source: _Input,
    journal: OutputJournal,
    config: GreyCloudConfig,
    credentials: auth.Credentials | None,
    options: RunOptions,
) -> int:
    if journal.repaired_bytes:
        say(
            f"repaired {journal.path}: removed a torn last line ({journal.repaired_bytes} "
            "bytes) left by an interrupted run; that line runs again"
        )
    plan = plan_run(source.checked, journal.recorded, options.retry_failed, source.ids_among)
    tally = RunTally(
        total=source.checked.valid_lines,
        already_done=plan.already_answered + plan.already_failed,
        already_failed=plan.already_failed,
    )
    say(_start_line(tally, plan.to_run, len(plan.retry_ids)))
    stopped: RunStopped | None = None
    received: int | None = None
    spent: str | None = None
    if plan.to_run:
        client = GreyCloudAsyncClient(config, credentials=credentials)
        # Only now, with a working client: the old failed lines make way for new ones.
        journal.drop_failed(plan.retry_ids)
        rpm = client.config.rpm
        tally.rpm = rpm if isinstance(rpm, int) else None  # "auto": no known pace
        tally.auto_rpm = _discovered_rpm(client)
        received, stopped = _run_with_progress(client, journal, tally, source, plan, options)
        if options.pricing is not None:
            spent = usage_summary(client.usage, options.pricing)

    say(summary(tally))
    if spent is not None:
        say(spent)
    invalid = source.checked.invalid_lines
    if invalid:
        say(f"{invalid} invalid input line(s) were skipped (listed above)")
    if received is not None:
        say(
            f"interrupted; every finished line is saved in {journal.path}. Resume with:\n"
            f"  {_this_command()}"
        )
        return 128 + received
    if stopped is not None:
        say(f"stopped early: {stopped}\nwhen that is fixed, resume with:\n  {_this_command()}")
        return exit_code(stopped.cause)
    if tally.failed or tally.already_failed or invalid:
        return EXIT_FAILED
    return EXIT_OK


def _run_with_progress(
    client: GreyCloudAsyncClient,
    journal: OutputJournal,
    tally: RunTally,
    source: _Input,
    plan: RunPlan,
    options: RunOptions,
) -> tuple[int | None, RunStopped | None]:
    reporter: Reporter = (
        RichReporter(stderr, tally)
        if stderr.is_terminal
        else LogReporter(stderr, tally, options.log_interval)
    )
    recorded = journal.recorded
    # Ids are unique in the input, so a line's id is in ``recorded`` when its line is reached
    # only if an earlier run wrote it (or --retry-failed did not drop it).
    lines = (line for line in source.lines() if plan.runs(line.id, recorded))

    async def run_lines() -> tuple[int | None, RunStopped | None]:
        """Run under the signal handlers; returns (signal received, run-stopping error)."""
        stopped: RunStopped | None = None

        async def work() -> None:
            nonlocal stopped
            try:
                async with GroupCommit(journal) as output:
                    runner = source.kind.runner(client, output, tally, reporter, options)
                    await runner.run(lines, plan.to_run)
            except RunStopped as exc:
                stopped = exc
            finally:
                await client.aclose()

        _, received = await until_signalled(work())
        return received, stopped

    with reporter:
        return asyncio.run(run_lines())


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


def _discovered_rpm(client: GreyCloudAsyncClient) -> Callable[[], float | None] | None:
    """For a run with a discovered rate (rpm="auto"): reads the requests/min found so far."""
    config = client.config
    per_model = (config.model_limits or {}).values()
    limits = [config.rpm, config.tpm, *(value for limit in per_model for value in limit.values())]
    if "auto" not in limits:  # no model of this run can have one: no need to ask
        return None

    def read() -> float | None:
        rates = [m.rpm for m in client.rate_limiter.stats().models.values() if m.auto]
        return sum(rates) if rates else None

    return read
