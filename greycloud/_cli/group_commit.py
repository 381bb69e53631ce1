"""Durable appends without blocking the event loop: one writer thread, one fsync per group.

Workers hand their result lines to ``GroupCommit.submit`` and go on with their next request; a
writer thread takes every line handed in so far, writes them with one ``write`` loop and makes
them durable with one ``fsync`` (``OutputJournal.write_lines``), then completes their futures
on the event loop. While that fsync runs the next group gathers, so the number of fsyncs adapts
to the disk: one per line when lines are rare, one per few milliseconds' worth of lines when
they come fast. A line counts as done (``recorded``, and whatever the caller does when its
future completes) only after its fsync, so after ``kill -9`` the output holds every line that
was reported, and at most a torn last line (which the journal repairs on open). The queue needs
no bound: each group takes all that is waiting, so it holds about one fsync's worth of lines.

Nothing here knows what a line means: any JSON object with an ``id`` and an ``error`` goes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

from .journal import JournalWriteError, OutputJournal, encode_line

_Entry = tuple[bytes, dict[str, Any], "asyncio.Future[None]"]


class GroupCommit:
    """Appends to ``journal`` from a writer thread. Use ``async with`` inside the event loop:
    leaving writes and syncs every line already handed in, then stops the thread, and raises
    the ``JournalWriteError`` of a group that could not be written."""

    def __init__(self, journal: OutputJournal) -> None:
        self._journal = journal
        self._pending: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()  # None: close
        self._failure: JournalWriteError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.groups = 0  # fsyncs so far (for tests and benchmarks)

    async def __aenter__(self) -> GroupCommit:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._write_groups, name="greycloud-journal")
        self._thread.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self._pending.put(None)
        if self._thread is not None:
            # Off the loop: the thread may be in an fsync, and it needs the loop to settle.
            await asyncio.to_thread(self._thread.join)
        if self._failure is not None and exc_type is None:
            raise self._failure

    def submit(self, record: dict[str, Any]) -> asyncio.Future[None]:
        """Hand ``record`` over as one line; the future completes once it is on disk.

        The future fails with ``JournalWriteError`` when its group could not be written; from
        then on ``submit`` raises it at once (the file still ends with the last whole line).
        """
        assert self._loop is not None, "use GroupCommit inside 'async with'"
        if self._failure is not None:
            raise self._failure
        done: asyncio.Future[None] = self._loop.create_future()
        self._pending.put((encode_line(record), record, done))
        return done

    async def append(self, record: dict[str, Any]) -> None:
        """``submit`` and wait until the line is on disk."""
        # Shielded: a cancelled caller stops waiting, but the line is still written.
        await asyncio.shield(self.submit(record))

    def _write_groups(self) -> None:
        closing = False
        while not closing:
            group: list[_Entry] = []
            entry = self._pending.get()  # sleeps until a line comes
            while entry is not None:
                group.append(entry)
                try:
                    entry = self._pending.get_nowait()  # and takes every line waiting
                except queue.Empty:
                    break
            else:
                closing = True  # everything handed in before close is in this group
            if not group:
                continue
            failure = self._failure
            if failure is None:
                try:
                    self._journal.write_lines([data for data, _, _ in group])
                    self.groups += 1
                except JournalWriteError as exc:
                    failure = self._failure = exc
            self._settle(group, failure)

    def _settle(self, group: list[_Entry], failure: JournalWriteError | None) -> None:
        def settle() -> None:
            for _, record, done in group:
                if failure is None:
                    self._journal.note(record)
                if done.done():  # a cancelled waiter
                    continue
                if failure is None:
                    done.set_result(None)
                else:
                    done.set_exception(failure)

        assert self._loop is not None
        self._loop.call_soon_threadsafe(settle)
