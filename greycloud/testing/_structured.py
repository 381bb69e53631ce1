"""Answers that are not free text: function calls from a script, and JSON that fits a schema.

Both are decided by the request alone, so a retried request or a restarted stream gets the same
answer: the function-calling step is the number of function replies the request already
carries, and the JSON is drawn from a seed derived from the request.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FunctionCall = Mapping[str, Any]  # {"name": ..., "args": {...}}


@dataclass(frozen=True)
class FunctionScript:
    """The calls the model makes, step by step: ``steps[i]`` is answered once the request
    carries ``i`` function replies in its current exchange; after the last step, text."""

    steps: tuple[tuple[dict[str, Any], ...], ...]

    @classmethod
    def build(cls, steps: Sequence[FunctionCall | Sequence[FunctionCall]]) -> FunctionScript:
        built = []
        for number, step in enumerate(steps):
            calls = [step] if isinstance(step, Mapping) else list(step)
            if not calls:
                raise ValueError(f"step {number} has no calls")
            checked = []
            for call in calls:
                name = call.get("name")
                if not isinstance(name, str) or not name:
                    raise ValueError(f"step {number}: each call needs a name, got {call!r}")
                checked.append({"name": name, "args": dict(call.get("args") or {})})
            built.append(tuple(checked))
        return cls(tuple(built))

    def calls_for(self, body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The calls answering ``body``, or None when the script is done (or has no tools)."""
        if not body.get("tools"):
            return None
        step = replies_in_exchange(body.get("contents"))
        if step >= len(self.steps):
            return None
        return [dict(call) for call in self.steps[step]]


def replies_in_exchange(contents: Any) -> int:
    """How many user turns of function replies follow the last user turn with text."""
    count = 0
    for content in contents if isinstance(contents, list) else []:
        if not isinstance(content, dict) or content.get("role", "user") != "user":
            continue
        parts = content.get("parts") or []
        if any(
            isinstance(p, dict) and ("functionResponse" in p or "function_response" in p)
            for p in parts
        ):
            count += 1
        else:
            count = 0
    return count


def response_schema(generation_config: Mapping[str, Any]) -> tuple[Any, bool] | None:
    """The schema the answer must fit, and whether it is a JSON Schema (else an OpenAPI-style
    ``Schema`` as ``responseSchema`` carries it); None when the request sends neither."""
    for camel, snake, is_json_schema in (
        ("responseJsonSchema", "response_json_schema", True),
        ("responseSchema", "response_schema", False),
    ):
        schema = generation_config.get(camel, generation_config.get(snake))
        if schema:
            return schema, is_json_schema
    return None


def json_text(schema: Any, seed: int) -> str:
    """A JSON document that validates against ``schema`` (either kind), decided by ``seed``."""
    return json.dumps(_value(schema, random.Random(seed), schema, 0), ensure_ascii=False)


_WORDS = ("river", "garden", "lantern", "quota", "meadow", "signal", "harbor", "summit")
_MAX_DEPTH = 6


def _value(schema: Any, rng: random.Random, root: Any, depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key, {}) if isinstance(target, Mapping) else {}
        return _value(target, rng, root, depth + 1)
    for key in ("anyOf", "any_of", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            real = [o for o in options if not (isinstance(o, Mapping) and _kind(o) == "null")]
            return _value((real or options)[0], rng, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    kind = _kind(schema)
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        return {name: _value(sub, rng, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        low = int(schema.get("minItems", schema.get("min_items", 1)) or 0)
        high = schema.get("maxItems", schema.get("max_items"))
        count = max(low, 1) if high is None else min(max(low, 1), int(high))
        return [_value(schema.get("items", {}), rng, root, depth + 1) for _ in range(count)]
    if kind == "integer":
        return _number(schema, rng, whole=True)
    if kind == "number":
        return _number(schema, rng, whole=False) + 0.5
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):  # JSON Schema: ["string", "null"]
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if kind is None and "properties" in schema:
        return "object"
    return str(kind or "string").lower()


def _number(schema: Mapping[str, Any], rng: random.Random, *, whole: bool) -> int:
    low = schema.get("minimum", 0)
    high = schema.get("maximum", low + 100 if isinstance(low, (int, float)) else 100)
    low_int, high_int = int(float(low)), int(float(high)) - (0 if whole else 1)
    return rng.randint(low_int, max(low_int, high_int))
