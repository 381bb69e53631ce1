"""Reading the input JSONL file and checking every line before anything is sent.

Each line is one JSON object: an ``id`` (a string or an integer, unique in the file), then either
``prompt`` (a string) or ``contents`` (a list of Content objects or strings), and optionally
``model``, ``system_instruction``, generation settings and ``metadata`` (any JSON, copied to
the output line). Unknown keys are problems, so that a misspelt setting is not silently ignored.
Blank lines are skipped. Every string must be valid UTF-8 text (no lone surrogates), every
number writable back as JSON (no NaN or Infinity, which are refused rather than written as
null, and no integer past 4300 digits), and nesting at most 100 levels deep; see
``greycloud._core.json_lines``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
from google.genai import types

from .._core.json_lines import LineProblem, parse_json_line
from .._core.request import estimate_tokens
from ..config import THINKING_LEVELS, GreyCloudConfig
from .jsonl_input import LineId

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


def line_id(line: PromptLine) -> LineId:
    return line.id


def token_check(config: GreyCloudConfig) -> Callable[[PromptLine], str | None]:
    """A check that a line's prompt fits in its model's whole token quota (``tpm``), by the
    limiter's own estimate: the limiter would refuse a larger one (``RequestTooLargeError``)."""

    def check(line: PromptLine) -> str | None:
        model = line.model or config.model
        system = line.system_instruction or config.system_instruction
        tokens = estimate_tokens(line.contents, system, model)
        limit = config.limits_for(model)["tpm"]
        if limit == "auto" or tokens <= limit:  # "auto": no token limit of its own
            return None
        return (
            f"needs about {tokens} input tokens, more than the whole token quota of {limit} "
            f"per minute for {model} (tpm), so it could never be sent; split it or raise --tpm"
        )

    return check


def checked_with(
    *checks: Callable[[PromptLine], str | None],
) -> Callable[[int, str], tuple[PromptLine | None, list[str]]]:
    """``parse_line`` followed by ``checks`` on each line that parsed."""

    def parse(number: int, text: str) -> tuple[PromptLine | None, list[str]]:
        line, problems = parse_line(number, text)
        if line is None:
            return None, problems
        problems = [problem for check in checks if (problem := check(line)) is not None]
        return (None, problems) if problems else (line, [])

    return parse


def parse_line(number: int, text: str) -> tuple[PromptLine | None, list[str]]:
    """The line as a ``PromptLine`` (None when it is unusable) and what is wrong with it."""
    data, problems = load_object(text, KNOWN_KEYS)
    return (None, problems) if data is None else _prompt_checks(number, data, problems)


def check_line(number: int, value: Any) -> tuple[PromptLine | None, list[str]]:
    """``parse_line`` for a line already decoded from JSON (e.g. a dict given by a program)."""
    data, problems = check_object(value, KNOWN_KEYS)
    return (None, problems) if data is None else _prompt_checks(number, data, problems)


def _prompt_checks(
    number: int, data: dict[str, Any], problems: list[str]
) -> tuple[PromptLine | None, list[str]]:
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
    return _prompt_line(number, data), []


def load_object(text: str, known_keys: frozenset[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """The line's JSON object (None when it is not one) and the problems with its keys and id
    (shared by the kinds of input line)."""
    try:
        data = parse_json_line(text)
    except LineProblem as exc:
        return None, [str(exc)]
    return check_object(data, known_keys)


def check_object(data: Any, known_keys: frozenset[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """``load_object`` for a value already decoded from JSON."""
    if not isinstance(data, dict):
        return None, [f"must be a JSON object, got {_json_type(data)}"]

    problems: list[str] = []
    unknown = sorted(set(data) - known_keys)
    if unknown:
        problems.append(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(known_keys))}; put your own data under 'metadata')"
        )

    line_id = data.get("id")
    if "id" not in data:
        problems.append("no 'id'")
    elif isinstance(line_id, bool) or not isinstance(line_id, (str, int)) or line_id == "":
        problems.append(f"'id' must be a non-empty string or an integer, got {_json_type(line_id)}")
    return data, problems


def parse_checked_line(number: int, text: str) -> tuple[PromptLine | None, list[str]]:
    """A line that ``parse_line`` (and any further check) already found valid, parsed again
    without checking it again: the second pass of ``greycloud run``."""
    return _prompt_line(number, json.loads(text)), []


def _prompt_line(number: int, data: dict[str, Any]) -> PromptLine:
    return PromptLine(
        line_number=number,
        id=data["id"],
        contents=data["prompt"] if "prompt" in data else data["contents"],
        model=data.get("model"),
        system_instruction=data.get("system_instruction"),
        settings={key: data[key] for key in SETTINGS if key in data},
        metadata=data.get("metadata"),
    )


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
