"""Reading the input JSONL file and checking every line before anything is sent.

Each line is one JSON object: an ``id`` (a string or an integer, unique in the file), then either
``prompt`` (a string) or ``contents`` (a list of Content objects or strings), and optionally
``model``, ``system_instruction``, generation settings and ``metadata`` (any JSON, copied to
the output line). Unknown keys are problems, so that a misspelt setting is not silently ignored.
Blank lines are skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from google.genai import types

from ..config import THINKING_LEVELS

LineId = str | int

# Settings a line may carry, each passed to ``generate_with_retry`` as a keyword of that name.
Check = Callable[[Any], str | None]  # None when the value is fine, else what is wrong


def _number(low: float | None = None, high: float | None = None) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return "must be a number"
        if (low is not None and value < low) or (high is not None and value > high):
            return f"must be between {low} and {high}" if high is not None else f"must be ≥ {low}"
        return None

    return check


def _integer(minimum: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if minimum is not None and value < minimum:
            return f"must be ≥ {minimum}"
        return None

    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _text_list(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return None
    return "must be a list of strings"


def _thinking_level(value: Any) -> str | None:
    if isinstance(value, str) and value.lower() in THINKING_LEVELS:
        return None
    return f"must be one of {', '.join(THINKING_LEVELS)}"


SETTINGS: Mapping[str, Check] = {
    "temperature": _number(0.0, 2.0),
    "top_p": _number(0.0, 1.0),
    "top_k": _number(1.0),
    "max_output_tokens": _integer(1),
    "seed": _integer(),
    "stop_sequences": _text_list,
    "presence_penalty": _number(-2.0, 2.0),
    "frequency_penalty": _number(-2.0, 2.0),
    "response_mime_type": _text,
    "thinking_level": _thinking_level,
}
_OTHER_KEYS = ("id", "prompt", "contents", "model", "system_instruction", "metadata")
KNOWN_KEYS = frozenset((*_OTHER_KEYS, *SETTINGS))


@dataclass(frozen=True)
class PromptLine:
    """One valid input line: what to send, and where it came from."""

    line_number: int
    id: LineId
    contents: str | list[Any]
    model: str | None = None
    system_instruction: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    metadata: Any = None


@dataclass(frozen=True)
class InputProblem:
    line_number: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.message}"


@dataclass
class PromptFile:
    """The valid lines in file order, and every problem found (empty when all is well)."""

    lines: list[PromptLine]
    problems: list[InputProblem]
    invalid_lines: int  # lines left out because of a problem


def describe_id(value: LineId) -> str:
    return json.dumps(value, ensure_ascii=False)


def read_prompts(path: Path) -> PromptFile:
    """Read and check every line of ``path``; raises ``OSError`` when it cannot be read.

    A line with a duplicate id is a problem (the first one is kept); so is a line whose
    bytes are not UTF-8.
    """
    lines: list[PromptLine] = []
    problems: list[InputProblem] = []
    invalid = 0
    first_seen: dict[LineId, int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(InputProblem(number, f"not UTF-8 ({exc.reason})"))
                invalid += 1
                continue
            line, line_problems = parse_line(number, text)
            if line is not None and line.id in first_seen:
                line_problems.append(
                    f"duplicate id {describe_id(line.id)} (first on line {first_seen[line.id]})"
                )
            problems.extend(InputProblem(number, message) for message in line_problems)
            if line is None or line_problems:
                invalid += 1
                continue
            first_seen[line.id] = number
            lines.append(line)
    return PromptFile(lines, problems, invalid)


def parse_line(number: int, text: str) -> tuple[PromptLine | None, list[str]]:
    """The line as a ``PromptLine`` (None when it is unusable) and what is wrong with it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON ({exc.msg} at column {exc.colno})"]
    return check_line(number, data)


def check_line(number: int, data: Any) -> tuple[PromptLine | None, list[str]]:
    """``parse_line`` for a line already decoded from JSON (e.g. a dict given by a program)."""
    if not isinstance(data, dict):
        return None, [f"must be a JSON object, got {_json_type(data)}"]

    problems: list[str] = []
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        problems.append(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(KNOWN_KEYS))}; put your own data under 'metadata')"
        )

    line_id = data.get("id")
    if "id" not in data:
        problems.append("no 'id'")
    elif isinstance(line_id, bool) or not isinstance(line_id, (str, int)) or line_id == "":
        problems.append(f"'id' must be a non-empty string or an integer, got {_json_type(line_id)}")

    contents = _contents(data, problems)
    for key in ("model", "system_instruction"):
        if key in data and _text(data[key]) is not None:
            problems.append(f"'{key}' must be a non-empty string")
    settings = {key: data[key] for key in SETTINGS if key in data}
    for key, value in settings.items():
        problem = SETTINGS[key](value)
        if problem is not None:
            problems.append(f"'{key}' {problem}, got {json.dumps(value)}")

    if problems or contents is None:
        return None, problems
    assert isinstance(line_id, (str, int))
    return PromptLine(
        line_number=number,
        id=line_id,
        contents=contents,
        model=data.get("model"),
        system_instruction=data.get("system_instruction"),
        settings=settings,
        metadata=data.get("metadata"),
    ), []


def _contents(data: dict[str, Any], problems: list[str]) -> str | list[Any] | None:
    has_prompt, has_contents = "prompt" in data, "contents" in data
    if has_prompt == has_contents:
        problems.append(
            "needs exactly one of 'prompt' (a string) and 'contents' (a list)"
            if not has_prompt
            else "has both 'prompt' and 'contents'; keep one"
        )
        return None
    if has_prompt:
        prompt = data["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append("'prompt' must be a non-empty string")
            return None
        return prompt
    contents = data["contents"]
    if not isinstance(contents, list) or not contents:
        problems.append("'contents' must be a non-empty list")
        return None
    for index, item in enumerate(contents):
        if isinstance(item, str):
            continue
        if not isinstance(item, dict):
            problems.append(f"'contents'[{index}] must be an object or a string")
            return None
        try:
            types.Content.model_validate(item)
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"'contents'[{index}].{where}: {error['msg']}")
            return None
    return contents


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return names.get(type(value), type(value).__name__)
