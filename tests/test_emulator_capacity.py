"""The emulator's capacity mode: a hidden shared pool per model, like Dynamic Shared Quota.

An injected clock moves the pool and its schedule without sleeping; requests go through the real
SDK on a real socket.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import errors

from greycloud.testing import Capacity, VertexEmulator

MODEL = "gemini-2.5-flash"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emulator(clock: Clock) -> Iterator[VertexEmulator]:
    with VertexEmulator(capacity=[(0.0, 2.0), (10.0, 5.0)], clock=clock) as emu:
        yield emu


@pytest.fixture
def sdk(emulator: VertexEmulator) -> genai.Client:
    return emulator.sdk_client()  # one per test: making one takes a while


def call(client: genai.Client, model: str = MODEL, text: str = "hello") -> int:
    """The HTTP status of one generate call."""
    try:
        client.models.generate_content(model=model, contents=text)
    except errors.APIError as exc:
        return exc.code
    return 200


def test_beyond_the_capacity_the_pool_answers_429_resource_exhausted(sdk: genai.Client) -> None:
    client = sdk
    client.models.generate_content(model=MODEL, contents="hi")
    client.models.generate_content(model=MODEL, contents="hi")  # 2/s, a full second's burst
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    assert caught.value.message == "Resource exhausted, please try again later."
    # Dynamic Shared Quota names no quota and gives no retry delay.
    assert "details" not in caught.value.details["error"]


def test_the_schedule_changes_the_capacity_and_stats_count_each_second(
    emulator: VertexEmulator, sdk: genai.Client, clock: Clock
) -> None:
    outcomes = []
    for second in (0, 1, 10, 11):
        clock.now = 1000.0 + second
        outcomes.append([call(sdk) for _ in range(7)])
    assert [o.count(200) for o in outcomes] == [2, 2, 5, 5]
    seconds = emulator.stats()[MODEL].seconds
    assert [(s.second, s.capacity, s.accepted, s.rejected) for s in seconds] == [
        (0, 2.0, 2, 5),
        (1, 2.0, 2, 5),
        (10, 5.0, 5, 2),
        (11, 5.0, 5, 2),
    ]
    assert emulator.stats()[MODEL].rejected == 14


def test_set_capacity_per_model_and_lifting_it(emulator: VertexEmulator, sdk: genai.Client) -> None:
    emulator.set_capacity(1.0, model="gemini-2.5-pro")
    assert [call(sdk, "gemini-2.5-pro") for _ in range(2)] == [200, 429]
    emulator.set_capacity(None)  # every model: no pool any more
    assert {call(sdk, "gemini-2.5-pro") for _ in range(5)} == {200}
    emulator.set_capacity([(0.0, 1.0)])  # a new schedule, counted from now
    assert [call(sdk) for _ in range(2)] == [200, 429]


def test_a_token_capacity_refuses_by_input_tokens(clock: Clock) -> None:
    capacity = Capacity(tokens_per_second=30)
    with VertexEmulator(capacity=capacity, clock=clock) as emu:
        sdk = emu.sdk_client()
        long_prompt = "word " * 20  # about 25 tokens
        assert call(sdk, text=long_prompt) == 200
        assert call(sdk, text=long_prompt) == 429
        clock.now += 1.0
        assert call(sdk, text=long_prompt) == 200


def test_bad_capacities_fail_at_construction() -> None:
    with pytest.raises(TypeError, match="requests per second"):
        VertexEmulator(capacity="lots")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        Capacity(requests_per_second=-1)
