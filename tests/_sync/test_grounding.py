# DO NOT EDIT: generated from tests/_async/test_grounding.py by tools/generate.py.
# Change tests/_async/test_grounding.py and run `make generate`.
# output-sha256: d28aae3621de275d
"""Vertex AI Search grounding, checked on what reached the emulator (search and generation).

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from google.genai import types

from greycloud import GreyCloudClient
from greycloud._core.request import build_request
from greycloud.testing import Fault, RequestRecord, SearchDocument, VertexEmulator

DATASTORE = "projects/test-project/locations/global/collections/default_collection/dataStores/docs"
DOCUMENTS = [
    SearchDocument(
        "refunds",
        "Refund policy",
        "Laptops can be returned within 30 days for a full refund.",
        "gs://docs/refunds.pdf",
    ),
    SearchDocument("screens", "Screen sizes", "The 15 inch laptop has a matte screen."),
    SearchDocument("shipping", "Shipping", "Orders ship within 2 business days."),
]
QUESTION = "What is the refund policy for laptops?"


@pytest.fixture
def client(vertex_emulator: VertexEmulator) -> Iterator[GreyCloudClient]:
    vertex_emulator.set_search_documents(DOCUMENTS)
    config = vertex_emulator.config(
        use_vertex_ai_search=True, vertex_ai_search_datastore=DATASTORE, rpm=100_000
    )
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


def searches(emulator: VertexEmulator) -> list[RequestRecord]:
    return [r for r in emulator.requests() if r.path.endswith(":search")]


def generations(emulator: VertexEmulator) -> list[dict[str, Any]]:
    bodies = []
    for record in emulator.requests():
        if "GenerateContent" in record.path or ":generateContent" in record.path:
            assert isinstance(record.body, dict)
            bodies.append(record.body)
    return bodies


def last_user_parts(body: dict[str, Any]) -> list[str]:
    user = [c for c in body["contents"] if c.get("role") == "user"][-1]
    return [part.get("text", "") for part in user["parts"]]


def grounding_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "grounding" in r.__dict__]


def outcomes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ``grounding`` attribute of each record on the greycloud.grounding logger."""
    return [r.__dict__["grounding"] for r in grounding_records(caplog)]


def collect(stream: Iterator[Any]) -> list[Any]:
    return [item for item in stream]


# -- inject ------------------------------------------------------------------------------------


def test_inject_puts_the_sources_block_in_front_of_the_question(
    client: GreyCloudClient,
    vertex_emulator: VertexEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="greycloud.grounding")
    response = client.generate_content(QUESTION)
    assert response.text

    [search] = searches(vertex_emulator)
    assert search.path == f"/v1/{DATASTORE}/servingConfigs/default_search:search"
    assert search.status == 200  # authorised with the client's credentials
    assert isinstance(search.body, dict)
    assert search.body["query"] == QUESTION
    assert search.body["contentSearchSpec"] == {"snippetSpec": {"returnSnippet": True}}

    [body] = generations(vertex_emulator)
    assert "tools" not in body
    block, question = last_user_parts(body)
    assert question == QUESTION
    assert block.index("<sources>") < block.index("[1] Refund policy (gs://docs/refunds.pdf)")
    assert "Laptops can be returned within 30 days for a full refund." in block
    assert "<b>" not in block
    assert "cite" in block

    [record] = grounding_records(caplog)
    assert record.__dict__["grounding"] == "inject"
    assert record.__dict__["grounding_sources"] == 1


def test_every_generation_path_is_grounded(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    collect(client.generate_content_stream(QUESTION))
    client.generate_with_retry(QUESTION)
    collect(client.generate_with_retry(QUESTION, streaming=True))
    bodies = generations(vertex_emulator)
    assert len(bodies) == 3
    assert len(searches(vertex_emulator)) == 3
    for body in bodies:
        block, question = last_user_parts(body)
        assert block.startswith("Answer using only the numbered sources")
        assert question == QUESTION


def test_multi_turn_contents_are_not_changed(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    contents: list[Any] = [
        types.Content(role="user", parts=[types.Part(text="Hello")]),
        types.Content(role="model", parts=[types.Part(text="Hi, how can I help?")]),
        {"role": "user", "parts": [{"text": QUESTION}]},
    ]
    before = copy.deepcopy(contents)
    client.generate_content(contents)
    assert contents == before
    [search] = searches(vertex_emulator)
    assert isinstance(search.body, dict)
    assert search.body["query"] == QUESTION
    [body] = generations(vertex_emulator)
    assert body["contents"][0]["parts"] == [{"text": "Hello"}]
    assert len(body["contents"]) == 3
    assert "<sources>" in last_user_parts(body)[0]


def test_token_estimate_includes_the_block(client: GreyCloudClient) -> None:
    plain = build_request(client.config, QUESTION)
    grounded = client._ground(client._build(QUESTION))
    block = grounded.contents[0]
    assert isinstance(block, str)
    assert grounded.estimate.total >= plain.estimate.total + len(block) // 4


def test_quotes_become_keywords_and_unit_marks_stay(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    client.generate_content('Is the “refund policy” the same for a 15" laptop?')
    queries = [r.body["query"] for r in searches(vertex_emulator) if isinstance(r.body, dict)]
    # The unit mark stays; the emulator (like keyword search) then finds no document with
    # `15"` in it, so the search is repeated without any quotes.
    assert queries == [
        'Is the refund policy the same for a 15" laptop?',
        "Is the refund policy the same for a 15 laptop?",
    ]
    assert "[1] Refund policy" in last_user_parts(generations(vertex_emulator)[0])[0]


def test_search_again_without_quotes_when_nothing_is_found(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    client.generate_content('15" matte')
    queries = [r.body["query"] for r in searches(vertex_emulator) if isinstance(r.body, dict)]
    assert queries == ['15" matte', "15 matte"]
    assert "[1] Screen sizes" in last_user_parts(generations(vertex_emulator)[0])[0]


def test_no_results_sends_the_question_alone(
    client: GreyCloudClient,
    vertex_emulator: VertexEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="greycloud.grounding")
    client.generate_content("zebra giraffe")
    assert len(searches(vertex_emulator)) == 1
    assert last_user_parts(generations(vertex_emulator)[0]) == ["zebra giraffe"]
    assert outcomes(caplog) == ["no_results"]


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [(Fault.status(500), 3), (Fault.drop(), 3), (Fault.status(403), 1)],
    ids=["500", "dropped", "403"],
)
def test_a_failing_search_degrades_to_an_ungrounded_answer(
    client: GreyCloudClient,
    vertex_emulator: VertexEmulator,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    attempts: int,
) -> None:
    caplog.set_level(logging.INFO, logger="greycloud.grounding")
    vertex_emulator.inject(fault, times=None, path=":search")
    response = client.generate_content(QUESTION)
    assert response.text
    assert len(searches(vertex_emulator)) == attempts
    [body] = generations(vertex_emulator)
    assert last_user_parts(body) == [QUESTION]
    assert "tools" not in body
    [record] = grounding_records(caplog)
    assert record.__dict__["grounding"] == "failed"
    assert record.levelno == logging.WARNING


def test_a_passing_search_failure_is_retried(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.inject(Fault.status(503), times=1, path=":search")
    client.generate_content(QUESTION)
    assert [r.status for r in searches(vertex_emulator)] == [503, 200]
    assert "<sources>" in last_user_parts(generations(vertex_emulator)[0])[0]


def test_an_expired_token_is_refreshed_for_search_and_generation(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.expire_token()
    client.generate_content(QUESTION)
    statuses = [(r.path.rsplit(":", 1)[-1], r.status) for r in vertex_emulator.requests()]
    # The search refreshed the shared credentials, so generation went through at once.
    assert statuses == [("search", 401), ("search", 200), ("generateContent", 200)]


# -- tool mode and explicit tools --------------------------------------------------------------


def test_tool_mode_sends_the_tool_and_no_block(
    vertex_emulator: VertexEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="greycloud.grounding")
    config = vertex_emulator.config(
        use_vertex_ai_search=True, vertex_ai_search_datastore=DATASTORE, grounding_mode="tool"
    )
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        client.generate_content(QUESTION)
    assert searches(vertex_emulator) == []
    [body] = generations(vertex_emulator)
    # The SDK sends this nested field in snake_case, which the service accepts as well.
    assert body["tools"] == [{"retrieval": {"vertex_ai_search": {"datastore": DATASTORE}}}]
    assert last_user_parts(body) == [QUESTION]
    assert outcomes(caplog) == ["tool"]


def test_explicit_tools_turn_injection_off(
    client: GreyCloudClient,
    vertex_emulator: VertexEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="greycloud.grounding")
    client.generate_content(QUESTION, tools=[types.Tool(google_search=types.GoogleSearch())])
    assert searches(vertex_emulator) == []
    [body] = generations(vertex_emulator)
    assert last_user_parts(body) == [QUESTION]
    assert outcomes(caplog) == ["skipped"]


def test_grounding_off_searches_nothing_and_logs_nothing(
    vertex_emulator: VertexEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="greycloud.grounding")
    config = vertex_emulator.config(vertex_ai_search_datastore=DATASTORE)
    with GreyCloudClient(config, credentials=vertex_emulator.credentials) as client:
        client.generate_content(QUESTION)
    assert searches(vertex_emulator) == []
    assert grounding_records(caplog) == []


class _Records(logging.Handler):
    """Every record that reaches the grounding logger, as a handler on it sees them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_grounding_logger_gets_one_record_per_call_and_nothing_else(
    client: GreyCloudClient, vertex_emulator: VertexEmulator
) -> None:
    handler = _Records()
    grounding_logger = logging.getLogger("greycloud.grounding")
    previous = grounding_logger.level
    grounding_logger.addHandler(handler)
    grounding_logger.setLevel(logging.DEBUG)
    try:
        vertex_emulator.inject(Fault.status(503), times=1, path=":search")  # retried, then found
        client.generate_content(QUESTION)
        vertex_emulator.inject(Fault.status(503), times=None, path=":search")  # fails for good
        client.generate_content(QUESTION)
        vertex_emulator.clear_faults()
        client.generate_content(QUESTION)
    finally:
        grounding_logger.removeHandler(handler)
        grounding_logger.setLevel(previous)
    # Search retries are logged elsewhere: a handler counting outcomes sees only outcomes.
    assert [getattr(r, "grounding", "?") for r in handler.records] == ["inject", "failed", "inject"]
