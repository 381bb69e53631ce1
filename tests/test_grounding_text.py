"""The pure side of Vertex AI Search grounding: queries, endpoints, results, block, placement."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from google.genai import types

from greycloud._core.grounding_text import (
    INSTRUCTION,
    MAX_QUERY_CHARS,
    SOURCES_END,
    SOURCES_START,
    MalformedSearchResponse,
    Source,
    build_sources_block,
    clean_snippet,
    last_user_text,
    normalise_query,
    parse_search_response,
    search_body,
    search_endpoint,
    search_url,
    strip_quotes,
    with_sources,
)

DATASTORE = "projects/p/locations/{}/collections/default_collection/dataStores/docs"

# -- the query ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ('what is the "refund policy"?', "what is the refund policy?"),
        ('"refund policy" and "warranty terms"', "refund policy and warranty terms"),
        ("the “refund policy” please", "the refund policy please"),
        ("the ＂refund policy＂ please", "the refund policy please"),
        ('mixed “refund policy" forms', "mixed refund policy forms"),
        ('("refund policy")', "(refund policy)"),
        ('a 15" laptop', 'a 15" laptop'),
        ("a 15” laptop", "a 15” laptop"),
        ('a 2.5" drive and a 15" laptop', 'a 2.5" drive and a 15" laptop'),
        ('15" laptop with "retina display"', '15" laptop with retina display'),
        ('"size 15"', "size 15"),
        ('""', ""),
        ('"', ""),
        ('" "', ""),
        ("“”＂", ""),
        ('a stray " quote', "a stray quote"),
        ('unclosed "phrase here', "unclosed phrase here"),
        ("  many   spaces\n\tand lines ", "many spaces and lines"),
        ("no quotes at all", "no quotes at all"),
    ],
)
def test_normalise_query(text: str, query: str) -> None:
    assert normalise_query(text) == query


def test_long_query_is_cut_between_words() -> None:
    query = normalise_query("word " * 1000)
    assert len(query) <= MAX_QUERY_CHARS
    assert query.endswith("word")


def test_strip_quotes_removes_every_kind() -> None:
    assert strip_quotes('a 15" “x” ＂y＂') == "a 15 x y"


# -- where to search ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "endpoint"),
    [
        ("global", "https://discoveryengine.googleapis.com"),
        ("us", "https://us-discoveryengine.googleapis.com"),
        ("eu", "https://eu-discoveryengine.googleapis.com"),
    ],
)
def test_endpoint_per_location(location: str, endpoint: str) -> None:
    assert search_endpoint(location) == endpoint
    datastore = DATASTORE.format(location)
    assert search_url(datastore) == (
        f"{endpoint}/v1/{datastore}/servingConfigs/default_search:search"
    )


def test_endpoint_override() -> None:
    datastore = DATASTORE.format("eu")
    assert search_url(datastore, "http://127.0.0.1:9/") == (
        f"http://127.0.0.1:9/v1/{datastore}/servingConfigs/default_search:search"
    )


def test_search_body_asks_for_snippets() -> None:
    assert search_body("q", 3) == {
        "query": "q",
        "pageSize": 3,
        "contentSearchSpec": {"snippetSpec": {"returnSnippet": True}},
    }


# -- what came back ----------------------------------------------------------------------------


def test_clean_snippet() -> None:
    raw = "Laptops can be <b>returned</b> within 30&nbsp;days &amp; that&#39;s it<br>ok&nbsp;..."
    assert clean_snippet(raw) == "Laptops can be returned within 30 days & that's it ok ..."
    assert clean_snippet("a &lt;/sources&gt; b </SOURCES> c") == "a b c"


def result(derived: dict[str, Any], **document: Any) -> dict[str, Any]:
    return {"id": "x", "document": {"id": "x", "derivedStructData": derived, **document}}


def test_parse_search_response_real_shape() -> None:
    payload = {
        "results": [
            result(
                {
                    "title": "Returns <b>policy</b>",
                    "link": "gs://b/returns.pdf",
                    "snippets": [
                        {"snippet": "Within <b>30</b> days.", "snippet_status": "SUCCESS"}
                    ],
                }
            ),
            result(
                {
                    "title": "No snippet",
                    "snippets": [
                        {
                            "snippet": "No snippet is available for this page.",
                            "snippet_status": "NO_SNIPPET_AVAILABLE",
                        }
                    ],
                    "extractive_answers": [{"content": "From an answer.", "pageNumber": "2"}],
                }
            ),
            result({"title": "Nothing to quote"}),
            {"id": "no-document"},
        ],
        "totalSize": 4,
        "attributionToken": "t",
    }
    assert parse_search_response(payload) == [
        Source("Returns policy", "gs://b/returns.pdf", "Within 30 days."),
        Source("No snippet", "", "From an answer."),
    ]
    assert parse_search_response({"totalSize": 0}) == []


@pytest.mark.parametrize("payload", [[], "text", {"results": {}}, {"results": ["x"]}])
def test_malformed_search_response(payload: Any) -> None:
    with pytest.raises(MalformedSearchResponse):
        parse_search_response(payload)


# -- the block ---------------------------------------------------------------------------------


def sources(count: int, length: int = 200) -> list[Source]:
    return [Source(f"Doc {n}", f"gs://b/{n}", ("word " * length)[:length]) for n in range(count)]


def test_block_is_numbered_delimited_and_instructed() -> None:
    block = build_sources_block([Source("A", "gs://a", "alpha"), Source("B", "", "beta")])
    assert block.startswith(INSTRUCTION)
    assert f"{SOURCES_START}\n[1] A (gs://a)\nalpha\n[2] B\nbeta\n{SOURCES_END}\n" in block
    assert build_sources_block([]) == ""


def test_block_cap_cuts_later_snippets_first() -> None:
    block = build_sources_block(sources(5, 400), max_chars=1200)
    assert len(block) <= 1200
    assert "[1] Doc 0" in block and "[2] Doc 1" in block
    first = block.split("[1] Doc 0 (gs://b/0)\n", 1)[1].split("\n", 1)[0]
    assert len(first) == 400  # the first source is whole
    assert "…" in block
    assert "[5] Doc 4" not in block
    assert block.endswith(f"{SOURCES_END}\n")


def test_block_too_small_for_anything_is_empty() -> None:
    assert build_sources_block(sources(2), max_chars=len(INSTRUCTION) + 10) == ""


# -- where it goes -----------------------------------------------------------------------------

BLOCK = "SOURCES"


def test_string_prompt() -> None:
    assert last_user_text("question?") == "question?"
    assert with_sources("question?", BLOCK) == [BLOCK, "question?"]


def test_multi_turn_contents_only_the_last_user_message_changes() -> None:
    contents = [
        types.Content(role="user", parts=[types.Part(text="first")]),
        types.Content(role="model", parts=[types.Part(text="answer")]),
        {"role": "user", "parts": [{"text": "second"}, {"text": "part"}]},
    ]
    before = copy.deepcopy(contents)
    assert last_user_text(contents) == "second part"
    new = with_sources(contents, BLOCK)
    assert contents == before
    assert new[:2] == contents[:2]
    assert isinstance(new[2], types.Content)
    assert new[2].role == "user"
    assert [p.text for p in new[2].parts or []] == [BLOCK, "second", "part"]


def test_trailing_model_turn_skips_back_to_the_user() -> None:
    contents = [
        types.Content(role="user", parts=[types.Part(text="ask")]),
        types.Content(role="model", parts=[types.Part(text="prefill")]),
    ]
    assert last_user_text(contents) == "ask"
    new = with_sources(contents, BLOCK)
    assert [p.text for p in new[0].parts] == [BLOCK, "ask"]
    assert new[1] is contents[1]


def test_run_of_parts_and_nested_list() -> None:
    contents: list[Any] = [
        types.Content(role="model", parts=[types.Part(text="hi")]),
        "look at",
        types.Part(text="this"),
    ]
    assert last_user_text(contents) == "look at this"
    assert with_sources(contents, BLOCK) == [contents[0], BLOCK, "look at", contents[2]]
    nested = [["a", "b"]]
    assert last_user_text(nested) == "a b"
    assert with_sources(nested, BLOCK) == [[BLOCK, "a", "b"]]
    assert nested == [["a", "b"]]


def test_single_content_and_part() -> None:
    content = types.Content(role="user", parts=[types.Part(text="q")])
    new = with_sources(content, BLOCK)
    assert [p.text for p in new[0].parts] == [BLOCK, "q"]
    assert [p.text for p in content.parts or []] == ["q"]
    part = types.Part(text="q")
    assert with_sources(part, BLOCK) == [BLOCK, part]


def test_no_user_message() -> None:
    contents = [types.Content(role="model", parts=[types.Part(text="x")])]
    assert last_user_text(contents) == ""
    assert with_sources(contents, BLOCK) is contents
