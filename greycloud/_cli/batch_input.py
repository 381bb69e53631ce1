"""Reading and checking a batch input JSONL file, every problem with its line number.

Each line goes through the same check ``GreyCloudBatch`` applies (``request_line``: a request
``{"contents", "generationConfig", ...}`` with an optional ``key``, or a whole input line
``{"key", "request", ...}``); only the reporting differs: the library stops at the first bad
line, while a command lists them all, as ``greycloud run`` does for its input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._batch_format import KEY_FIELD, request_line
from .prompts import InputProblem


@dataclass
class BatchFile:
    """The checked input lines, ready to upload, and every problem found."""

    lines: list[dict[str, Any]]
    problems: list[InputProblem]


def read_batch_requests(path: Path, model: str) -> BatchFile:
    """Check every line of ``path``. Raises ``OSError`` when it cannot be read."""
    lines: list[dict[str, Any]] = []
    problems: list[InputProblem] = []
    first_seen: dict[str, int] = {}  # key -> line number
    text = path.read_text(encoding="utf-8")
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as exc:
            problems.append(InputProblem(number, f"not valid JSON ({exc})"))
            continue
        try:
            # The index is what the library gives a line without a key: request-<line - 1>.
            line = request_line(item, number - 1, model)
        except ValueError as exc:
            problems.append(InputProblem(number, str(exc)))
            continue
        key = line[KEY_FIELD]
        if key in first_seen:
            problems.append(
                InputProblem(
                    number, f"{KEY_FIELD} {key!r} is already used on line {first_seen[key]}"
                )
            )
            continue
        first_seen[key] = number
        lines.append(line)
    if not lines and not problems:
        problems.append(InputProblem(1, "the file holds no requests"))
    return BatchFile(lines, problems)
