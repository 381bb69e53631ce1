"""A chat's history: what each turn adds, and which turns are sent again (pure, no I/O).

The same rules as google-genai's chats: the comprehensive history keeps every turn; the curated
history, which is what the next turn sends, leaves out a turn whose answer was empty or
invalid, together with the message that led to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.genai import _transformers, types

ROLES = ("user", "model")


def as_contents(history: Sequence[Any] | None) -> list[types.Content]:
    """A history given as ``Content`` objects or their dicts, checked."""
    contents = [
        item if isinstance(item, types.Content) else types.Content.model_validate(item)
        for item in history or ()
    ]
    for index, content in enumerate(contents):
        if content.role not in ROLES:
            raise ValueError(f"history[{index}].role must be user or model, got {content.role!r}")
    return contents


def user_turn(message: Any) -> types.Content:
    """The user's message (a string, a part, or a list of parts) as one ``Content``."""
    return _transformers.t_content(message)


def is_valid(content: types.Content) -> bool:
    """An answer worth sending back: it has parts, none of them empty."""
    return bool(content.parts) and all(part != types.Part() for part in content.parts or ())


def curated(history: Sequence[types.Content]) -> list[types.Content]:
    """The turns to send: each run of model contents is kept only when all of it is valid,
    otherwise it is dropped along with the user message before it."""
    kept: list[types.Content] = []
    index = 0
    while index < len(history):
        if history[index].role == "user":
            kept.append(history[index])
            index += 1
            continue
        answer = []
        while index < len(history) and history[index].role == "model":
            answer.append(history[index])
            index += 1
        if all(is_valid(content) for content in answer):
            kept.extend(answer)
        elif kept:
            kept.pop()
    return kept


def turn_entries(
    sent_before: int,
    message: types.Content,
    calling_history: Sequence[types.Content] | None,
    answer: types.Content | None,
) -> list[types.Content]:
    """What one completed turn adds to the history: the message, any function calls and
    replies exchanged on the way (from ``automatic_function_calling_history``, which starts
    with the ``sent_before`` contents already in the history), then the answer."""
    entries = list(calling_history[sent_before:]) if calling_history else [message]
    entries.append(answer if answer is not None else types.Content(role="model", parts=[]))
    return entries


def streamed_answer(parts: Sequence[types.Part]) -> types.Content | None:
    """The answer a stream delivered in pieces, as one model turn: adjacent plain text pieces
    joined into one part (thoughts and function calls kept as they are); None when empty."""
    joined: list[types.Part] = []
    for part in parts:
        previous = joined[-1] if joined else None
        if _plain_text(part) and previous is not None and _plain_text(previous):
            joined[-1] = types.Part(text=(previous.text or "") + (part.text or ""))
        else:
            joined.append(part)
    return types.Content(role="model", parts=joined) if joined else None


def _plain_text(part: types.Part) -> bool:
    return part.text is not None and part.model_fields_set <= {"text"}
