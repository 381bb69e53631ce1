"""Reading a JSONL input file as a stream, in two passes, whatever the kind of line.

The first pass (``scan``) checks every line before anything is sent and keeps no line: only
the numbers of the bad lines and an 8-byte hash of each id, to find duplicate ids. The second
pass (``stream``) parses the file again and yields the good lines one at a time, so memory
stays about the same for ten thousand lines or ten million; it may use a quicker parser that
trusts the first pass. A command supplies the parsers (line number and text to an item and its
problems) and the id of an item.
"""

from __future__ import annotations

import bisect
import json
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

LineId = str | int
T = TypeVar("T")
_EIGHT_BYTES = (1 << 64) - 1

Parse = Callable[[int, str], tuple[T | None, list[str]]]  # (the item or None, its problems)


@dataclass(frozen=True)
class InputProblem:
    line_number: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.message}"


@dataclass
class InputScan:
    """What the first pass found: every problem, and what the second pass needs."""

    valid_lines: int
    problems: list[InputProblem]
    invalid: set[int]  # numbers of the lines left out because of a problem
    id_hashes: array[int] = field(repr=False)  # of every valid line's id, sorted

    @property
    def invalid_lines(self) -> int:
        return len(self.invalid)

    def may_contain(self, line_id: LineId) -> bool:
        """Whether a valid line may have this id: never wrong when it says no, wrong about
        one time in 2**64 when it says yes."""
        key = id_hash(line_id)
        index = bisect.bisect_left(self.id_hashes, key)
        return index < len(self.id_hashes) and self.id_hashes[index] == key


def describe_id(value: LineId) -> str:
    return json.dumps(value, ensure_ascii=False)


def id_hash(line_id: LineId) -> int:
    """An 8-byte hash of an id. Python's own: both passes run in one process, and an equal
    hash is only a hint (duplicates and ``--retry-failed`` ids are confirmed exactly)."""
    return hash(line_id) & _EIGHT_BYTES


def scan(path: Path, parse: Parse[T], id_of: Callable[[T], LineId]) -> InputScan:
    """Check every line of ``path`` (raises ``OSError`` when it cannot be read).

    A line whose bytes are not UTF-8 is a problem; so is a line with the id of an earlier
    line (the first one is kept).
    """
    problems: list[InputProblem] = []
    invalid: set[int] = set()
    hashes = array("Q")
    for number, item, line_problems in _parsed(path, parse, skip=frozenset()):
        if item is None or line_problems:
            problems.extend(InputProblem(number, message) for message in line_problems)
            invalid.add(number)
        else:
            hashes.append(id_hash(id_of(item)))
    hashes = array("Q", sorted(hashes))
    repeated = {a for a, b in pairwise(hashes) if a == b}
    duplicates = _find_duplicates(path, parse, id_of, repeated, invalid) if repeated else []
    problems.extend(duplicates)
    invalid.update(problem.line_number for problem in duplicates)
    problems.sort(key=lambda problem: problem.line_number)
    return InputScan(len(hashes) - len(duplicates), problems, invalid, hashes)


def stream(path: Path, parse: Parse[T], skip: set[int]) -> Iterator[T]:
    """The items of the good lines of ``path`` in file order (lines in ``skip`` left out)."""
    for _, item, line_problems in _parsed(path, parse, skip):
        if item is not None and not line_problems:
            yield item


def _find_duplicates(
    path: Path,
    parse: Parse[T],
    id_of: Callable[[T], LineId],
    repeated: set[int],
    invalid: set[int],
) -> list[InputProblem]:
    """The lines whose id an earlier line has, among the ids whose hash is ``repeated``."""
    first_seen: dict[LineId, int] = {}
    found: list[InputProblem] = []
    for number, item, _ in _parsed(path, parse, invalid):
        if item is None:
            continue
        line_id = id_of(item)
        if id_hash(line_id) not in repeated:
            continue
        if line_id in first_seen:
            message = f"duplicate id {describe_id(line_id)} (first on line {first_seen[line_id]})"
            found.append(InputProblem(number, message))
        else:
            first_seen[line_id] = number
    return found


def _parsed(
    path: Path, parse: Parse[T], skip: set[int] | frozenset[int]
) -> Iterator[tuple[int, T | None, list[str]]]:
    """``(line number, item, problems)`` for each non-blank line not in ``skip``."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number in skip or not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, [f"not UTF-8 ({exc.reason})"]
                continue
            item, problems = parse(number, text)
            yield number, item, problems
