"""Token estimates for images, PDFs, audio and file URIs, checked against what the emulator
counts (by the service's published rules) through the real SDK on a real socket.

Written once here; ``make generate`` produces the sync twin in tests/_sync/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.genai import types

from greycloud import GreyCloudAsyncClient
from greycloud._core.request import build_request
from greycloud._primitives import async_map_bounded
from greycloud.testing import VertexEmulator, samples

MODEL = "gemini-2.5-flash"
PROMPT = "Describe what you see, in one sentence."


@pytest.fixture
async def client(vertex_emulator: VertexEmulator) -> AsyncIterator[GreyCloudAsyncClient]:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, max_concurrency=16)
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        yield client


def by_modality(usage: types.GenerateContentResponseUsageMetadata | None) -> dict[str, int]:
    assert usage is not None and usage.prompt_tokens_details
    return {
        str(d.modality.value): int(d.token_count or 0)
        for d in usage.prompt_tokens_details
        if d.modality is not None
    }


def count_calls(emulator: VertexEmulator) -> list[Any]:
    return [r for r in emulator.requests() if r.path.endswith(":countTokens")]


MEDIA = [
    ("png 200x150", samples.png(200, 150), "image/png"),
    ("png 1024x1024", samples.png(1024, 1024), "image/png"),
    ("jpeg 1920x1080", samples.jpeg(1920, 1080), "image/jpeg"),
    ("gif 640x480", samples.gif(640, 480), "image/gif"),
    ("webp 3000x800", samples.webp(3000, 800), "image/webp"),
    ("pdf 6 pages", samples.pdf(6), "application/pdf"),
    ("wav 7.5 s", samples.wav(7.5), "audio/wav"),
]


@pytest.mark.parametrize(("name", "data", "mime"), MEDIA, ids=[m[0] for m in MEDIA])
@pytest.mark.parametrize("model", [MODEL, "gemini-3-flash-preview"])
async def test_media_bytes_reach_the_request_and_are_estimated_by_modality(
    client: GreyCloudAsyncClient, name: str, data: bytes, mime: str, model: str
) -> None:
    """The media travel in the request and are booked under their modality. The emulator
    counts by greycloud's own rules table, so this does not check the rules themselves:
    tests/test_media_tokens.py holds them against the published figures."""
    contents = [PROMPT, types.Part.from_bytes(data=data, mime_type=mime)]
    estimate = build_request(client.config, contents, model=model).estimate
    response = await client.generate_content(contents, model=model)
    counted = by_modality(response.usage_metadata)
    assert set(counted) == set(estimate.tokens)
    for modality, tokens in counted.items():
        assert estimate.tokens[modality] == pytest.approx(tokens, rel=0.10), (name, modality)
    assert response.usage_metadata is not None
    assert counted[mime_modality(mime)] > 150  # the media, not just the text, was counted
    assert estimate.total == pytest.approx(response.usage_metadata.prompt_token_count, rel=0.10)


def mime_modality(mime: str) -> str:
    return {"image": "IMAGE", "audio": "AUDIO"}.get(mime.split("/")[0], "DOCUMENT")


async def test_media_resolution_sets_the_gemini_3_budget(client: GreyCloudAsyncClient) -> None:
    image = types.Part.from_bytes(data=samples.png(1024, 1024), mime_type="image/png")
    low = types.MediaResolution.MEDIA_RESOLUTION_LOW
    model = "gemini-3-pro-preview"
    estimate = build_request(
        client.config, [PROMPT, image], model=model, extra={"media_resolution": low}
    )
    response = await client.generate_content([PROMPT, image], model=model, media_resolution=low)
    assert by_modality(response.usage_metadata)["IMAGE"] == estimate.estimate.tokens["IMAGE"] == 280


async def test_count_tokens_counts_the_media(client: GreyCloudAsyncClient) -> None:
    contents = [PROMPT, types.Part.from_bytes(data=samples.pdf(2), mime_type="application/pdf")]
    assert await client.count_tokens(contents) == 10 + 2 * 258


async def test_a_file_uri_is_counted_once_per_uri(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    clip = types.Part.from_uri(file_uri="gs://media/clip.mp4", mime_type="video/mp4")
    other = types.Part.from_uri(file_uri="gs://media/other.mp4", mime_type="video/mp4")
    for part in (clip, clip, other, clip, other):
        response = await client.generate_content([PROMPT, part])
        request = await client._ground(client._build([PROMPT, part]))
        # What was booked is what the service then counted.
        assert response.usage_metadata is not None
        assert request.booked_tokens.total == response.usage_metadata.prompt_token_count
    counted = count_calls(vertex_emulator)
    assert [file_uri(r.body["contents"][0]["parts"][0]) for r in counted] == [
        "gs://media/clip.mp4",
        "gs://media/other.mp4",
    ]
    # Counting is booked under its own limiter key, not the model's.
    assert f"countTokens:{MODEL}" in client.rate_limiter.stats().models


async def test_calls_side_by_side_count_a_uri_once(
    client: GreyCloudAsyncClient, vertex_emulator: VertexEmulator
) -> None:
    scan = types.Part.from_uri(file_uri="gs://media/scan.pdf", mime_type="application/pdf")

    async def ask(number: int) -> types.GenerateContentResponse:
        return await client.generate_content([f"Page summary {number}", scan])

    responses = await async_map_bounded(ask, range(8), 8)
    assert len(responses) == 8
    assert len(count_calls(vertex_emulator)) == 1


async def test_the_average_mode_learns_instead_of_counting(
    vertex_emulator: VertexEmulator,
) -> None:
    config = vertex_emulator.config(rpm=100_000, tpm=100_000_000, media_token_estimate="average")
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        part = types.Part.from_uri(file_uri="gs://media/talk.mp3", mime_type="audio/mpeg")
        response = await client.generate_content([PROMPT, part])
        assert count_calls(vertex_emulator) == []
        real = by_modality(response.usage_metadata)["AUDIO"]
        assert client.rate_limiter.media_average(MODEL, "AUDIO") == pytest.approx(real)
        request = await client._ground(client._build([PROMPT, part]))
        assert request.booked_tokens.fixed == {"AUDIO": real}


async def test_image_calls_leave_the_text_estimate_alone(
    vertex_emulator: VertexEmulator,
) -> None:
    # Images priced by a guess (file URIs, average mode) are off by up to 2x either way.
    config = vertex_emulator.config(
        rpm=100_000, tpm=100_000_000, max_concurrency=16, media_token_estimate="average"
    )
    async with GreyCloudAsyncClient(config, credentials=vertex_emulator.credentials) as client:
        for _ in range(5):
            await client.generate_content(PROMPT)
        text_before = client.rate_limiter.stats().models[MODEL].calibration["TEXT"]
        for number in range(100):
            part = types.Part.from_uri(
                file_uri=f"gs://media/photo-{number}.jpg", mime_type="image/jpeg"
            )
            inline = types.Part.from_bytes(data=samples.png(900, 300), mime_type="image/png")
            await client.generate_content(["Caption:", part, inline])
        text_after = client.rate_limiter.stats().models[MODEL].calibration["TEXT"]
    assert abs(text_after / text_before - 1) < 0.05


def file_uri(part: dict[str, Any]) -> str:
    """The URI of a fileData part (the SDK sends its inner keys in either spelling)."""
    file = part.get("fileData") or part["file_data"]
    return str(file.get("fileUri") or file["file_uri"])
