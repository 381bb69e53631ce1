"""The pure embedding rules (greycloud._core.embedding) and the emulator's embedding routes."""

from __future__ import annotations

import pytest
from google.genai import errors, types

from greycloud._core.embedding import (
    as_contents,
    counted_tokens,
    limits_for,
    merge,
    plan_embedding,
    split,
)
from greycloud.errors import ConfigError
from greycloud.testing import VertexEmulator


def content(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


@pytest.mark.parametrize(
    ("model", "vertexai", "inputs", "dimensions"),
    [
        ("text-embedding-005", True, 250, 768),
        ("publishers/google/models/text-multilingual-embedding-002", True, 250, 768),
        ("gemini-embedding-001", True, 100, 3_072),
        ("gemini-embedding-001", False, 100, 3_072),
        ("gemini-embedding-2-preview", True, 1, 3_072),
        ("gemini-embedding-2", False, 100, 3_072),
        ("some-maas-embedder", True, 1, 3_072),
        ("an-unknown-model", True, 1, 3_072),
    ],
)
def test_limits_by_model_and_api(model: str, vertexai: bool, inputs: int, dimensions: int) -> None:
    limits = limits_for(model, vertexai)
    assert (limits.max_inputs, limits.max_dimensions) == (inputs, dimensions)


def test_split_keeps_order_and_both_limits() -> None:
    contents = [content(str(i)) for i in range(7)]
    requests = list(split(contents, [5, 5, 5, 30, 5, 5, 5], max_inputs=3, max_tokens=12))
    assert [(r.start, len(r.contents), r.estimated_tokens) for r in requests] == [
        (0, 2, 10),  # a third input would pass 12 tokens
        (2, 1, 5),
        (3, 1, 30),  # larger than a request on its own: it goes alone
        (4, 2, 10),
        (6, 1, 5),
    ]
    assert [c for r in requests for c in r.contents] == contents


def test_plan_caps_requests_at_the_token_quota_and_truncated_inputs_at_the_model_limit() -> None:
    texts = ["x" * 40_000, "short text"]  # the first is cut to 2,048 tokens by the service
    plan = plan_embedding(texts, "text-embedding-005", vertexai=True, max_request_tokens=2_050)
    assert [r.estimated_tokens for r in plan.requests] == [2_048, 3]


def test_inputs_each_become_one_content() -> None:
    parts = [types.Part(text="a"), types.Part(text="b")]
    assert len(as_contents(parts)) == 2
    assert len(as_contents(types.Content(parts=parts))) == 1
    assert len(as_contents({"parts": [{"text": "a"}]})) == 1
    assert as_contents([{"text": "a"}])[0].parts == [types.Part(text="a")]
    # A text model gets one text part per input, or the SDK would send one instance per part.
    plan = plan_embedding(types.Content(parts=parts), "text-embedding-005", vertexai=True)
    assert plan.requests[0].contents[0].parts == [types.Part(text="a\nb")]


def test_gemini_api_refuses_vertex_only_settings() -> None:
    with pytest.raises(ConfigError) as raised:
        plan_embedding("x", "gemini-embedding-001", vertexai=False, auto_truncate=True)
    assert raised.value.field == "auto_truncate"


def test_counted_tokens_prefers_per_input_statistics() -> None:
    statistics = [types.ContentEmbeddingStatistics(token_count=n) for n in (3.0, 4.0)]
    response = types.EmbedContentResponse(
        embeddings=[types.ContentEmbedding(values=[1.0], statistics=s) for s in statistics],
        usage_metadata=types.UsageMetadata(prompt_token_count=99),
    )
    assert counted_tokens(response) == 7
    response.embeddings = [types.ContentEmbedding(values=[1.0])]
    assert counted_tokens(response) == 99
    response.usage_metadata = None
    assert counted_tokens(response) is None


def test_merge_concatenates_in_order_and_sums_what_is_reported() -> None:
    first = types.EmbedContentResponse(
        embeddings=[types.ContentEmbedding(values=[1.0]), types.ContentEmbedding(values=[2.0])],
        metadata=types.EmbedContentMetadata(billable_character_count=10),
    )
    second = types.EmbedContentResponse(
        embeddings=[types.ContentEmbedding(values=[3.0])],
        metadata=types.EmbedContentMetadata(billable_character_count=5),
        truncated=True,
    )
    merged = merge([first, second])
    assert [e.values for e in merged.embeddings or []] == [[1.0], [2.0], [3.0]]
    assert merged.metadata == types.EmbedContentMetadata(billable_character_count=15)
    assert merged.truncated is True and merged.usage_metadata is None


# -- the emulator's routes, through the raw SDK -------------------------------------------------


def test_the_emulator_counts_embeddings_against_the_models_quota(
    vertex_emulator: VertexEmulator,
) -> None:
    vertex_emulator.set_quota(rpm=2, model="text-embedding-005")
    sdk = vertex_emulator.sdk_client()
    for _ in range(2):
        sdk.models.embed_content(model="text-embedding-005", contents=["a", "b"])
    with pytest.raises(errors.ClientError) as raised:
        sdk.models.embed_content(model="text-embedding-005", contents=["a"])
    assert raised.value.code == 429
    sdk.models.embed_content(model="gemini-embedding-001", contents=["other model"])
    stats = vertex_emulator.stats()
    assert (stats["text-embedding-005"].accepted, stats["text-embedding-005"].rejected) == (2, 1)
    assert stats["text-embedding-005"].prompt_tokens == 4
    assert stats["gemini-embedding-001"].accepted == 1


def test_the_emulator_refuses_what_the_service_refuses(vertex_emulator: VertexEmulator) -> None:
    sdk = vertex_emulator.sdk_client()
    too_many = [f"t{i}" for i in range(251)]
    cases = [
        ("text-embedding-005", too_many, None),
        ("text-embedding-005", ["x" * 9_000], types.EmbedContentConfig(auto_truncate=False)),
        ("text-embedding-005", ["x"], types.EmbedContentConfig(output_dimensionality=769)),
    ]
    for model, contents, config in cases:
        with pytest.raises(errors.ClientError) as raised:
            sdk.models.embed_content(model=model, contents=contents, config=config)
        assert raised.value.code == 400
    cut = sdk.models.embed_content(model="text-embedding-005", contents=["x" * 9_000])
    statistics = (cut.embeddings or [])[0].statistics
    assert statistics is not None and statistics.truncated and statistics.token_count == 2_048
