"""Prompts and answers in the JSON shape of the OpenTelemetry GenAI conventions.

``gen_ai.input.messages``, ``gen_ai.output.messages`` and ``gen_ai.system_instructions`` are
JSON arrays of messages (``{"role": ..., "parts": [{"type": "text", "content": ...}]}``).
Only recorded when the user opts in to content capture: prompts may hold personal data.
"""

from __future__ import annotations

import json
from typing import Any

from google.genai import types

# Gemini's role names and the conventions' ones.
_ROLES = {"model": "assistant", "user": "user", "function": "tool", "tool": "tool"}


def input_messages(contents: Any) -> str:
    """The request's contents as ``gen_ai.input.messages``."""
    items = contents if isinstance(contents, list) else [contents]
    messages: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []  # bare parts and strings form one user message
    for item in items:
        if isinstance(item, types.Content | dict) and _is_message(item):
            role, parts = _role_and_parts(item)
            messages.append({"role": _ROLES.get(role, role), "parts": [_part(p) for p in parts]})
        else:
            loose.append(_part(item))
    if loose:
        messages.append({"role": "user", "parts": loose})
    return json.dumps(messages, ensure_ascii=False)


def system_instructions(instruction: Any) -> str | None:
    """The system instruction as ``gen_ai.system_instructions`` (None when there is none)."""
    if instruction is None:
        return None
    if isinstance(instruction, types.Content | dict) and _is_message(instruction):
        parts = list(_role_and_parts(instruction)[1])
    else:
        parts = instruction if isinstance(instruction, list) else [instruction]
    return json.dumps([_part(p) for p in parts], ensure_ascii=False)


def output_messages(text: str, finish_reason: str | None) -> str:
    """An answer's text as ``gen_ai.output.messages``."""
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return json.dumps([message], ensure_ascii=False)


def _is_message(item: Any) -> bool:
    return isinstance(item, types.Content) or "parts" in item or "role" in item


def _role_and_parts(item: types.Content | dict[str, Any]) -> tuple[str, list[Any]]:
    if isinstance(item, types.Content):
        return item.role or "user", list(item.parts or [])
    return str(item.get("role") or "user"), list(item.get("parts") or [])


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "content": part}
    if isinstance(part, dict):
        part = types.Part.model_validate(part)
    if isinstance(part, types.Part):
        if part.text is not None:
            kind = "reasoning" if part.thought else "text"
            return {"type": kind, "content": part.text}
        if part.function_call is not None:
            call = part.function_call
            return {"type": "tool_call", "name": call.name, "arguments": call.args}
        if part.function_response is not None:
            reply = part.function_response
            return {"type": "tool_call_response", "name": reply.name, "response": reply.response}
        if part.inline_data is not None:
            return {"type": "blob", "mime_type": part.inline_data.mime_type}
        if part.file_data is not None:
            return {"type": "uri", "uri": part.file_data.file_uri}
    return {"type": type(part).__name__}
