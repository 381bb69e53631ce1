"""One line of a JSONL input file, parsed so that nothing in it can fail later.

``json.loads`` accepts things that break a run after requests were paid for: a lone surrogate
(``"\\ud800"``) that no UTF-8 output can hold, ``NaN`` and ``Infinity`` (and ``1e400``, read as
infinity) that are not JSON, integers past Python's digit limit, and nesting deep enough to
exhaust the recursion limit. ``parse_json_line`` refuses all of them with a message that names
the field, so a bad line is reported in the input check, before anything is sent.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

MAX_DEPTH = 100  # arrays and objects nested deeper than this are refused

_OPENERS = frozenset("[{")
_CLOSERS = frozenset("]}")


class LineProblem(ValueError):
    """What is wrong with a line, as a sentence to show after its line number."""


def parse_json_line(text: str) -> Any:
    """The JSON value of ``text``; ``LineProblem`` when it is not JSON or cannot be written back
    exactly (as UTF-8 JSON) or nests more than ``MAX_DEPTH`` levels."""
    # Counting brackets is cheap and bounds the depth, so the exact scan runs only when needed.
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:
        raise LineProblem(
            f"nested more than {MAX_DEPTH} levels deep (arrays and objects inside each "
            "other); flatten it"
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineProblem(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise LineProblem(f"nested more than {MAX_DEPTH} levels deep; flatten it") from None
    except ValueError:  # an integer longer than Python reads (and writes) back
        raise LineProblem(
            f"holds a number of more than {sys.get_int_max_str_digits()} digits, more than "
            "can be read and written back; write it as a string"
        ) from None
    problem = unwritable(value)
    if problem is not None:
        raise LineProblem(problem)
    return value


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (brackets inside strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSERS:
            depth -= 1
    return deepest


def unwritable(value: Any) -> str | None:
    """Why ``value`` cannot be written back as UTF-8 JSON (naming where), or None when it can."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except (ValueError, UnicodeEncodeError):
        pass
    else:
        return None
    # Slow path, only for a bad line: find the first bad value and say where it is.
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str) and not _encodable(item):
            return f"{_name(where)} holds a lone surrogate, {_surrogate(item)}, {_SURROGATE_FIX}"
        if isinstance(item, float) and not math.isfinite(item):
            written = "NaN" if math.isnan(item) else "Infinity (or a number too large)"
            return f"{_name(where)} is {written}, which JSON cannot hold; use null or a string"
        if isinstance(item, dict):
            for key, inner in reversed(item.items()):
                if not _encodable(key):
                    return f"a key in {_name(where)} holds a lone surrogate, {_SURROGATE_FIX}"
                stack.append((f"{where}.{key}" if where else key, inner))
        elif isinstance(item, list):
            stack.extend(
                (f"{where}[{index}]", inner) for index, inner in reversed(list(enumerate(item)))
            )
    return "cannot be written back as JSON"  # pragma: no cover - one of the cases above


_SURROGATE_FIX = (
    "which cannot be written as UTF-8; fix the text (a character outside the Basic "
    "Multilingual Plane is a pair of \\u escapes, high then low)"
)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _surrogate(text: str) -> str:
    bad = next(char for char in text if 0xD800 <= ord(char) <= 0xDFFF)
    return f"\\u{ord(bad):04x}"


def _name(where: str) -> str:
    return f"'{where}'" if where else "the line"
