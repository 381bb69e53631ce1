"""The output JSONL file as a journal: what is done, durable appends, and repair after a crash.

Invariants: every line is one complete JSON object ending in a newline, and each id appears
once. A line is appended with one ``write`` loop and then ``fsync``, so once a result is
reported it survives a crash or ``kill -9``. The only damage such a kill can leave is a torn
last line (no newline); opening the journal truncates it away, and that id simply runs again.
Rewriting (to drop failed lines for ``--retry-failed``) goes through a temporary file and an
atomic ``os.replace``, so the file is always either the old or the new version.

An exclusive ``flock`` on the file stops two runs from writing to the same output at once.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .prompts import LineId

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one run at a time is on you
    fcntl = None  # type: ignore[assignment]


class JournalError(Exception):
    """The output file cannot be used (unreadable, locked, or not a greycloud output)."""


Outcome = Literal["ok", "failed"]  # what the output already says about an id


class OutputJournal:
    """An open output file: ``recorded`` maps each id already in it to its outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recorded: dict[LineId, Outcome] = {}
        self.repaired_bytes = 0  # size of the torn last line removed on open
        self._fd = -1

    # -- opening ----------------------------------------------------------------------------

    def __enter__(self) -> OutputJournal:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Lock the file (creating it), repair a torn last line, and load what is recorded."""
        created = not self.path.exists()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise JournalError(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            self._lock(self._fd)
            if created:
                _fsync_directory(self.path.parent)
            self._temporary_path().unlink(missing_ok=True)  # left by a rewrite cut short
            content = self._repair()
            self.recorded = self._load(content)
        except BaseException:
            self.close()
            raise

    def _lock(self, fd: int) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalError(
                f"another greycloud run is writing to {self.path}; wait for it to finish "
                "or choose another output file"
            ) from None

    def _repair(self) -> bytes:
        """Cut a torn last line (bytes after the last newline); returns the remaining content."""
        size = os.fstat(self._fd).st_size
        content = os.pread(self._fd, size, 0) if size else b""
        end = content.rfind(b"\n") + 1
        if end < len(content):
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
            self.repaired_bytes = len(content) - end
            content = content[:end]
        return content

    def _load(self, content: bytes) -> dict[LineId, Outcome]:
        recorded: dict[LineId, Outcome] = {}
        bad: list[int] = []
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            entry = _parse(line)
            if entry is None:
                bad.append(number)
                continue
            line_id, failed = entry
            recorded[line_id] = "failed" if failed else "ok"
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
            raise JournalError(
                f"{self.path} is not a greycloud output file: line {shown} is not a JSON "
                "object with an 'id'; choose another output file"
            )
        return recorded

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also releases the lock
            self._fd = -1

    # -- writing ----------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Write one result line and make it durable before returning."""
        self.append_all([record])

    def append_all(self, records: list[dict[str, Any]]) -> None:
        """Write result lines and make them durable (one fsync for all) before returning."""
        data = "".join(
            json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            for record in records
        ).encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        for record in records:
            self.recorded[record["id"]] = "ok" if record["error"] is None else "failed"

    def drop_failed(self, ids: set[LineId]) -> int:
        """Atomically rewrite the file without the failed lines of ``ids``; how many went."""
        doomed = {i for i in ids if self.recorded.get(i) == "failed"}
        if not doomed:
            return 0
        size = os.fstat(self._fd).st_size
        kept = [
            line
            for line in os.pread(self._fd, size, 0).splitlines(keepends=True)
            if line.strip() and (_parse(line) or (None, False))[0] not in doomed
        ]
        temporary = self._temporary_path()
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            self._lock(fd)  # hold the new file before it takes the name
            os.write(fd, b"".join(kept))
            os.fsync(fd)
            os.replace(temporary, self.path)
            _fsync_directory(self.path.parent)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        self.close()
        self._fd = fd
        self.recorded = self._load(b"".join(kept))
        return len(doomed)

    def _temporary_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.greycloud-rewrite")


def _parse(line: bytes) -> tuple[LineId, bool] | None:
    """``(id, failed)`` of an output line, or None when it is not one of ours."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    line_id = data.get("id")
    if isinstance(line_id, bool) or not isinstance(line_id, (str, int)):
        return None
    return line_id, data.get("error") is not None


def _fsync_directory(directory: Path) -> None:
    """Make a created or renamed directory entry durable (not possible on every platform)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
