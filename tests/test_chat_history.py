"""The chat history rules (pure): which turns are sent again, what a turn adds."""

from __future__ import annotations

from google.genai import types

from greycloud._core.chat_history import curated, streamed_answer, turn_entries, user_turn


def content(role: str, text: str | None) -> types.Content:
    return types.Content(role=role, parts=[] if text is None else [types.Part(text=text)])


def test_curated_history_drops_an_invalid_answer_with_its_message() -> None:
    history = [
        content("user", "a"),
        content("model", "A"),
        content("user", "b"),
        content("model", None),  # an empty answer
        content("user", "c"),
        content("model", "C"),
    ]
    assert curated(history) == [history[0], history[1], history[4], history[5]]


def test_an_answer_with_an_empty_part_is_invalid() -> None:
    history = [content("user", "a"), types.Content(role="model", parts=[types.Part()])]
    assert curated(history) == []


def test_a_turn_adds_the_message_the_exchange_and_the_answer() -> None:
    before = [content("user", "a"), content("model", "A")]
    message = user_turn("b")
    assert message.model_dump() == content("user", "b").model_dump()
    call = types.Content(
        role="model", parts=[types.Part(function_call=types.FunctionCall(name="f", args={}))]
    )
    reply = types.Content(
        role="user",
        parts=[types.Part(function_response=types.FunctionResponse(name="f", response={}))],
    )
    answer = content("model", "B")
    exchange = [*before, message, call, reply]
    assert turn_entries(len(before), message, exchange, answer) == [message, call, reply, answer]
    assert turn_entries(len(before), message, None, None) == [message, content("model", None)]


def test_a_streamed_answer_becomes_one_turn_with_its_text_joined() -> None:
    call = types.Part(function_call=types.FunctionCall(name="f", args={}))
    thought = types.Part(text="hmm", thought=True)
    parts = [types.Part(text="Hel"), types.Part(text="lo"), call, thought, types.Part(text="!")]
    answer = streamed_answer(parts)
    assert answer is not None and answer.role == "model"
    assert answer.parts == [types.Part(text="Hello"), call, thought, types.Part(text="!")]
    assert streamed_answer([]) is None
