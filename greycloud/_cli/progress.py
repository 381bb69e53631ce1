"""Progress of a run on stderr: a rich progress bar on a terminal, periodic log lines otherwise.

The runner only updates a :class:`RunTally`; a reporter decides how and when to show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from .results import LineResult


@dataclass
class RunTally:
    """Counts for one run. ``total`` includes ``already_done`` (lines a previous run wrote)."""

    total: int
    already_done: int
    already_failed: int = 0  # part of already_done: failed for good in an earlier run
    rpm: int | None = None  # the request limit: the ETA never assumes a faster pace
    auto_rpm: Callable[[], float | None] | None = None  # rpm="auto": the rate found so far
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers, retried or final
    prompt_tokens: int = 0
    output_tokens: int = 0  # candidates and thoughts
    prompt_by_modality: dict[str, int] = field(default_factory=dict)  # TEXT, IMAGE, ...
    started: float = field(default_factory=time.monotonic)

    @property
    def finished_this_run(self) -> int:
        return self.succeeded + self.failed

    @property
    def done(self) -> int:
        return self.already_done + self.finished_this_run

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def per_minute(self) -> float:
        elapsed = self.elapsed
        return 60.0 * self.finished_this_run / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> float | None:
        # The first minute's burst is no guide to the pace under a requests-per-minute limit.
        rate = min(self.per_minute(), self.rpm) if self.rpm else self.per_minute()
        return 60.0 * (self.total - self.done) / rate if rate > 0 else None

    def add_result(self, result: LineResult) -> None:
        if result.failed:
            self.failed += 1
        else:
            self.succeeded += 1
        if result.usage is not None:
            self.prompt_tokens += result.usage.prompt
            for modality, tokens in result.usage.by_modality:
                self.prompt_by_modality[modality] = (
                    self.prompt_by_modality.get(modality, 0) + tokens
                )
            self.output_tokens += result.usage.candidates + result.usage.thoughts

    def add_retry(self, rate_limited: bool) -> None:
        self.retries += 1
        self.rate_limited += rate_limited


class Reporter(Protocol):
    def __enter__(self) -> Reporter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def update(self) -> None:
        """The tally changed (cheap; called on every result and retry)."""


def compact(count: float) -> str:
    """12345 -> '12.3k'."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= limit:
            return f"{count / limit:.1f}{suffix}"
    return f"{count:.0f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def counters(tally: RunTally) -> str:
    line = (
        f"tokens {compact(tally.prompt_tokens)} in / {compact(tally.output_tokens)} out · "
        f"retries {tally.retries} · 429s {tally.rate_limited}"
    )
    discovered = tally.auto_rpm() if tally.auto_rpm is not None else None
    if discovered is not None:
        line += f" · auto rate {discovered:.0f}/min"
    return line


class _BarWithCounters(Progress):
    """A progress bar row, then the run's counters on a line of their own (they are long)."""

    counters_line = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield Text(self.counters_line, style="dim")


class RichReporter:
    """A live progress bar: done/total, rate, ETA, tokens, retries, 429s and failures."""

    def __init__(self, console: Console, tally: RunTally) -> None:
        self._tally = tally
        self._progress = _BarWithCounters(
            SpinnerColumn(),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/min · ETA {task.fields[eta]} ·"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichReporter:
        self._progress.start()
        self._task = self._progress.add_task("", total=self._tally.total, rate="0", eta="?")
        self.update()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.update()
        self._progress.stop()

    def update(self) -> None:
        if self._task is None:
            return
        tally = self._tally
        self._progress.update(
            self._task,
            completed=tally.done,
            rate=f"{tally.per_minute():.0f}",
            eta=duration(tally.eta_seconds()),
        )
        self._progress.counters_line = f"{counters(tally)} · failed {tally.failed}"


class LogReporter:
    """One plain line every ``interval`` seconds (stderr is a file or a pipe, not a terminal)."""

    def __init__(self, console: Console, tally: RunTally, interval: float) -> None:
        self._console = console
        self._tally = tally
        self._interval = interval
        self._last = time.monotonic()

    def __enter__(self) -> LogReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def update(self) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        tally = self._tally
        self._console.print(
            f"progress: {tally.done}/{tally.total} · {tally.per_minute():.0f}/min · "
            f"ETA {duration(tally.eta_seconds())} · {counters(tally)} · failed {tally.failed}",
            highlight=False,
            soft_wrap=True,
        )


def summary(tally: RunTally) -> str:
    """The one line printed at the end of a run."""
    earlier = ""
    if tally.already_done:
        earlier = (
            f" ({tally.already_done} from earlier runs, {tally.already_failed} of them failed)"
        )
    return (
        f"{tally.done}/{tally.total} lines done{earlier}; this run: {tally.succeeded} answered, "
        f"{tally.failed} failed, in {duration(tally.elapsed)}; {counters(tally)}"
        f"{by_modality(tally)}"
    )


def by_modality(tally: RunTally) -> str:
    """ " (tokens in: text 1.2k · image 40k)" when the prompts were not all text."""
    shares = tally.prompt_by_modality
    if set(shares) <= {"TEXT"}:
        return ""
    parts = " · ".join(f"{name.lower()} {compact(tokens)}" for name, tokens in shares.items())
    return f" (tokens in: {parts})"
