"""The emulator's structured answers: JSON that fits the schema sent, scripted function calls."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import pydantic
import pytest

from greycloud.testing._structured import FunctionScript, json_text, replies_in_exchange


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Street(pydantic.BaseModel):
    name: str
    number: int | None = None


class Town(pydantic.BaseModel):
    name: str
    population: int
    area: float
    coastal: bool
    colour: Colour
    streets: list[Street]
    mayor: Street | None


@pytest.mark.parametrize("seed", range(20))
def test_json_fits_a_pydantic_json_schema_with_refs(seed: int) -> None:
    Town.model_validate_json(json_text(Town.model_json_schema(), seed))


def test_json_fits_a_vertex_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 2},
            "score": {"type": "INTEGER", "minimum": 3, "maximum": 5},
            "kind": {"type": "STRING", "enum": ["a", "b"]},
        },
    }
    value = json.loads(json_text(schema, 1))
    assert len(value["tags"]) == 2 and all(isinstance(t, str) for t in value["tags"])
    assert 3 <= value["score"] <= 5 and value["kind"] in ("a", "b")


def turn(role: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "parts": list(parts)}


def test_the_script_step_is_read_from_the_request() -> None:
    script = FunctionScript.build([{"name": "f", "args": {"x": 1}}, [{"name": "g"}, {"name": "h"}]])
    tools = [{"functionDeclarations": [{"name": "f"}]}]
    reply = {"functionResponse": {"name": "f", "response": {}}}
    call = {"functionCall": {"name": "f"}}
    first = [turn("user", {"text": "hi"})]
    second = [*first, turn("model", call), turn("user", reply)]
    third = [*second, turn("model", call), turn("user", reply)]
    assert script.calls_for({"contents": first, "tools": tools}) == [
        {"name": "f", "args": {"x": 1}}
    ]
    assert [c["name"] for c in script.calls_for({"contents": second, "tools": tools}) or []] == [
        "g",
        "h",
    ]
    assert script.calls_for({"contents": third, "tools": tools}) is None  # then text
    assert script.calls_for({"contents": first}) is None  # no tools declared: text
    # A new user message starts a new exchange.
    assert replies_in_exchange([*third, turn("user", {"text": "again"})]) == 0


def test_a_bad_script_is_refused() -> None:
    with pytest.raises(ValueError, match="name"):
        FunctionScript.build([{"args": {}}])
