"""The output JSONL file as a journal: what is done, durable appends, and repair after a crash.

Invariants: every line is one complete JSON object ending in a newline, and each id appears
once. Lines are appended with one ``write`` loop and then ``fsync``, so once a result is
reported it survives a crash or ``kill -9``. The only damage such a kill can leave is a torn
last line (no newline); opening the journal truncates it away, and that id simply runs again.
A write that fails (disk full, file size limit, I/O error) is cut back off the file, so the
file again ends with the last whole line, and ``JournalWriteError`` says what happened.
Rewriting (to drop failed lines for ``--retry-failed``) goes through a temporary file and an
atomic ``os.replace``, so the file is always either the old or the new version.

The file is read and rewritten in chunks of ``chunk_size`` bytes, never in one call: a single
``read``/``write`` moves at most about 2 GiB on Linux, and outputs grow past that.

An exclusive ``flock`` on the file stops two runs from writing to the same output at once. The
lock is taken on whatever file holds the name once the lock is held: a run that opened the
file just before a rewrite replaced it opens the new file and locks again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .jsonl_input import LineId

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one run at a time is on you
    fcntl = None  # type: ignore[assignment]

DEFAULT_CHUNK_SIZE = 1 << 20  # bytes per read or write while scanning or rewriting


class JournalError(Exception):
    """The output file cannot be used (unreadable, locked, or not a greycloud output)."""


class JournalWriteError(JournalError):
    """Writing to the output failed (disk full, permission, I/O); earlier lines are intact."""


Outcome = Literal["ok", "failed"]  # what the output already says about an id


def encode_line(record: dict[str, Any]) -> bytes:
    """One output line: compact JSON and a newline, always valid JSON and valid UTF-8.

    ``allow_nan=False``: the input check refuses NaN and Infinity, so none can reach here.
    A lone surrogate can only come from the service's own text; it is written escaped.
    """
    try:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return (text + "\n").encode()
    except UnicodeEncodeError:
        return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


class OutputJournal:
    """An open output file: ``recorded`` maps each id already in it to its outcome."""

    def __init__(self, path: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.path = path
        self.chunk_size = chunk_size
        self.recorded: dict[LineId, Outcome] = {}
        self.repaired_bytes = 0  # size of the torn last line removed on open
        self._fd = -1
        self._size = 0  # where the next line goes: the end of the last whole line

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
        created = self._open_locked()
        try:
            if created:
                _fsync_directory(self.path.parent)
            self._temporary_path().unlink(missing_ok=True)  # left by a rewrite cut short
            self._repair()
            self.recorded = self._load()
        except OSError as exc:
            self.close()
            raise JournalError(f"cannot use {self.path}: {_reason(exc)}") from None
        except BaseException:
            self.close()
            raise

    def _open_locked(self) -> bool:
        """Open and lock the file now at ``path``; True when this created it."""
        while True:
            created = not self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                raise JournalError(f"cannot open {self.path}: {_reason(exc)}") from None
            try:
                self._lock(fd)
                # A rewrite may have put a new file under the name between open and lock;
                # then this lock guards a file nobody will read again: start over.
                if _same_file(fd, self.path):
                    self._fd = fd
                    return created
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

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

    def _repair(self) -> None:
        """Cut a torn last line (bytes after the last newline), reading back from the end."""
        size = os.fstat(self._fd).st_size
        end = size
        while end > 0:
            start = max(0, end - self.chunk_size)
            newline = _read_at(self._fd, start, end - start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end < size:
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
            self.repaired_bytes = size - end
        self._size = end

    def _load(self) -> dict[LineId, Outcome]:
        recorded: dict[LineId, Outcome] = {}
        bad: list[int] = []
        for number, line in enumerate(self._lines(), 1):
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

    def _lines(self) -> Iterator[bytes]:
        """Every whole line of the file (with its newline), read a chunk at a time."""
        position = 0
        partial: list[bytes] = []  # the start of a line that goes on in the next chunk
        while position < self._size:
            chunk = _read_at(self._fd, position, min(self.chunk_size, self._size - position))
            if not chunk:
                break
            position += len(chunk)
            pieces = chunk.split(b"\n")
            rest = pieces.pop()
            for piece in pieces:
                if partial:
                    partial.append(piece)
                    piece = b"".join(partial)
                    partial = []
                yield piece + b"\n"
            if rest:
                partial.append(rest)
        if partial:  # not possible after _repair; kept whole rather than dropped
            yield b"".join(partial)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also releases the lock
            self._fd = -1

    # -- writing ----------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Write one result line and make it durable before returning."""
        self.write_lines([encode_line(record)])
        self.note(record)

    def note(self, record: dict[str, Any]) -> None:
        """Count ``record`` as recorded (once its line is durable)."""
        self.recorded[record["id"]] = "ok" if record["error"] is None else "failed"

    def write_lines(self, lines: Iterable[bytes]) -> None:
        """Append encoded lines and ``fsync`` once; on failure the file is cut back to where it
        was and ``JournalWriteError`` is raised, so it still ends with a whole line."""
        try:
            written = _write_all(self._fd, lines, self.chunk_size)
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
                os.fsync(self._fd)
            raise JournalWriteError(
                f"cannot write to {self.path}: {_reason(exc)}. Every line written before "
                "is kept; fix that and run the same command again to resume"
            ) from None
        self._size += written

    def drop_failed(self, ids: set[LineId]) -> int:
        """Atomically rewrite the file without the failed lines of ``ids``; how many went."""
        doomed = {i for i in ids if self.recorded.get(i) == "failed"}
        if not doomed:
            return 0
        temporary = self._temporary_path()
        try:
            fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        except OSError as exc:
            raise JournalWriteError(
                f"cannot rewrite {self.path} without its failed lines (--retry-failed): "
                f"{_reason(exc)}; the file was left as it was"
            ) from None
        try:
            self._lock(fd)  # hold the new file before it takes the name
            kept = (
                line
                for line in self._lines()
                if line.strip() and (_parse(line) or (None, False))[0] not in doomed
            )
            size = _write_all(fd, kept, self.chunk_size)
            os.fsync(fd)
            os.replace(temporary, self.path)
            _fsync_directory(self.path.parent)
        except BaseException as exc:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise JournalWriteError(
                    f"cannot rewrite {self.path} without its failed lines (--retry-failed): "
                    f"{_reason(exc)}; the file was left as it was"
                ) from None
            raise
        self.close()
        self._fd, self._size = fd, size
        for line_id in doomed:
            del self.recorded[line_id]
        return len(doomed)

    def _temporary_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.greycloud-rewrite")


def _read_at(fd: int, offset: int, size: int) -> bytes:
    """Exactly ``size`` bytes at ``offset`` (``pread`` may return fewer), or up to the end."""
    parts: list[bytes] = []
    while size > 0:
        data = os.pread(fd, size, offset)
        if not data:
            break
        parts.append(data)
        offset += len(data)
        size -= len(data)
    return b"".join(parts)


def _write_all(fd: int, lines: Iterable[bytes], chunk_size: int) -> int:
    """Write ``lines`` in batches of about ``chunk_size`` bytes; how many bytes went."""
    total = 0
    batch: list[bytes] = []
    batched = 0
    for line in lines:
        batch.append(line)
        batched += len(line)
        if batched >= chunk_size:
            total += _write_bytes(fd, b"".join(batch), chunk_size)
            batch, batched = [], 0
    if batch:
        total += _write_bytes(fd, b"".join(batch), chunk_size)
    return total


def _write_bytes(fd: int, data: bytes, chunk_size: int) -> int:
    view = memoryview(data)
    while view:
        written = os.write(fd, view[:chunk_size])
        view = view[written:]
    return len(data)


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _parse(line: bytes) -> tuple[LineId, bool] | None:
    """``(id, failed)`` of an output line, or None when it is not one of ours."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
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
