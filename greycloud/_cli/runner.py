"""Running prompt lines through the client: a fixed pool of workers, one result line each.

Retries, backoff and the rate limits stay in the client (``generate_with_retry`` and its
limiter); the runner only counts retries through ``on_retry``. Each result is handed to the
output (a ``GroupCommit``) and counted only once it is durably written, so whatever the
progress shows is already on disk. Cancelling the run (Ctrl-C) cancels the requests in flight;
their lines are simply not written and run again next time.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import google.auth.exceptions

from .._async.client import GreyCloudAsyncClient
from .._primitives import gather_or_cancel
from ..errors import AuthError, QuotaExhaustedError
from .common import credentials_problem
from .group_commit import GroupCommit
from .journal import Outcome
from .jsonl_input import InputScan, LineId
from .progress import Reporter, RunTally
from .prompts import PromptLine
from .results import LineResult, answered, failed, is_rate_limited

T = TypeVar("T")

# Errors that every later line would hit too: they stop the run instead of failing each line
# (and being kept as failed, so that fixing the cause would not be enough to run them again).
RUN_STOPPING_ERRORS = (AuthError, QuotaExhaustedError, google.auth.exceptions.RefreshError)


class RunStopped(Exception):
    """The run stopped early because of an error no later line could avoid."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        if isinstance(cause, google.auth.exceptions.RefreshError):
            super().__init__(credentials_problem(cause))
        else:
            super().__init__(str(cause))


@dataclass(frozen=True)
class RunPlan:
    """Which input lines this run sends, given what the output already holds."""

    to_run: int
    already_answered: int
    already_failed: int  # kept as they are (not re-run without --retry-failed)
    retry_ids: set[LineId]  # failed lines that will run again (--retry-failed)

    def runs(self, line_id: LineId, recorded: Mapping[LineId, Outcome]) -> bool:
        """Whether the line with this id is sent in this run."""
        return line_id not in recorded or line_id in self.retry_ids


def plan_run(
    checked: InputScan,
    recorded: Mapping[LineId, Outcome],
    retry_failed: bool,
    input_ids: Callable[[set[LineId]], set[LineId]],
) -> RunPlan:
    """The plan for the valid lines ``checked`` found; ``input_ids(candidates)`` gives those
    of the candidate ids that some valid input line has (a pass over the input)."""
    answered_count = failed_count = 0
    failed_ids: set[LineId] = set()
    for line_id, outcome in recorded.items():
        if not checked.may_contain(line_id):
            continue
        if outcome == "ok":
            answered_count += 1
        elif retry_failed:
            failed_ids.add(line_id)
        else:
            failed_count += 1
    # The hashes may (very rarely) match an id that is not in the input: dropping its line
    # from the output would lose it, so these few are checked against the input itself.
    retry_ids = input_ids(failed_ids) if failed_ids else set()
    to_run = checked.valid_lines - answered_count - failed_count
    return RunPlan(to_run, answered_count, failed_count, retry_ids)


class BulkRunner:
    """Sends lines with ``concurrency`` workers and writes every result as it arrives."""

    def __init__(
        self,
        client: GreyCloudAsyncClient,
        output: GroupCommit,
        tally: RunTally,
        reporter: Reporter,
        *,
        max_retries: int,
        concurrency: int,
    ) -> None:
        self._client = client
        self._output = output
        self._tally = tally
        self._reporter = reporter
        self._max_retries = max_retries
        self._concurrency = concurrency

    async def run(self, lines: Iterable[PromptLine], count: int) -> None:
        """Run the ``count`` lines; raises ``RunStopped`` on an error that would fail all the
        rest, and ``JournalWriteError`` when a result cannot be saved."""
        # Shared: each worker takes the next group of lines when it is free.
        pending = iter(self.groups(lines))
        await gather_or_cancel(*(self._work(pending) for _ in range(min(self._concurrency, count))))

    def groups(self, lines: Iterable[PromptLine]) -> Iterator[Sequence[PromptLine]]:
        """The lines in the groups that are sent together: one at a time for generation."""
        return ([line] for line in lines)

    async def _work(self, pending: Iterator[Sequence[PromptLine]]) -> None:
        for group in pending:
            for result in await self._run_group(group):
                # Counted once on disk; meanwhile this worker sends its next group.
                saved = self._output.submit(result.as_json())
                saved.add_done_callback(functools.partial(self._count, result))

    async def _run_group(self, group: Sequence[PromptLine]) -> list[LineResult]:
        return [await self._run_line(line) for line in group]

    def _count(self, result: LineResult, saved: asyncio.Future[None]) -> None:
        if not saved.cancelled() and saved.exception() is None:
            self._tally.add_result(result)
            self._reporter.update()

    async def _run_line(self, line: PromptLine) -> LineResult:
        model = line.model or self._client.config.model
        attempts = self.attempts()
        try:
            response = await self._client.generate_with_retry(
                line.contents,
                max_retries=self._max_retries,
                on_retry=attempts.on_retry,
                model=line.model,
                system_instruction=line.system_instruction,
                **line.settings,
            )
        except RUN_STOPPING_ERRORS as exc:
            raise RunStopped(exc) from exc
        except Exception as exc:  # any other failure belongs to this line alone
            attempts.gave_up(exc)
            return failed(line, model, exc, attempts.count, attempts.rate_limited)
        return answered(line, model, response, attempts.count, attempts.rate_limited)

    def attempts(self) -> Attempts:
        """A counter for one call's attempts that reports its retries to the run as they come."""
        return Attempts(self._tally, self._reporter)


class Attempts:
    """How many attempts one call took and how many were refused with a 429; each retry is
    counted in the run's tally (and shown) as it happens."""

    def __init__(self, tally: RunTally, reporter: Reporter) -> None:
        self._tally = tally
        self._reporter = reporter
        self.count = 1
        self.rate_limited = 0

    def on_retry(self, attempt: int, error: BaseException, delay: float) -> None:
        """``generate_with_retry``'s ``on_retry``."""
        self.count = attempt + 1
        refused = is_rate_limited(error)
        self.rate_limited += refused
        self._tally.add_retry(refused)
        self._reporter.update()

    def gave_up(self, error: BaseException) -> None:
        """The call failed for good with ``error`` (its last attempt)."""
        if is_rate_limited(error):
            self.rate_limited += 1
            self._tally.rate_limited += 1


async def until_signalled(work: Awaitable[T]) -> tuple[T | None, int | None]:
    """Await ``work``; on SIGINT or SIGTERM cancel it and return ``(None, signal number)``.

    A second signal while the first is being handled exits at once: everything reported is
    already on disk, so nothing is lost by not waiting for the clean-up.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def on_signal(number: int) -> None:
        if received:
            os._exit(128 + number)
        received.append(number)
        task.cancel()

    previous = {int(n): signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    installed = _install_handlers(loop, on_signal)
    try:
        return await work, None
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        return None, received[0]
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
            if previous[number] is not None:  # the loop leaves the default, not what was there
                signal.signal(number, previous[number])


def _install_handlers(loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]) -> list[int]:
    installed = []
    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(number, handler, int(number))
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            continue
        installed.append(int(number))
    return installed
