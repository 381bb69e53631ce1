"""Token estimates by modality (pure): sizes read from media headers, the rules table, and the
limiter's calibration per (model, modality)."""

from __future__ import annotations

import base64
import struct

import pytest
from google.genai import types

from greycloud._core import media, token_rules
from greycloud._core.request import estimate_tokens
from greycloud._core.token_estimate import estimate_prompt
from greycloud._limiter.calibration import Calibration, TokenEstimate
from greycloud.testing import samples

# -- sizes from headers ------------------------------------------------------------------------


@pytest.mark.parametrize("writer", [samples.png, samples.gif, samples.jpeg, samples.webp])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (384, 200), (1024, 1024), (3000, 1700)])
def test_image_sizes_come_from_the_header(writer: object, width: int, height: int) -> None:
    assert media.image_size(writer(width, height)) == (width, height)  # type: ignore[operator]


def test_webp_lossy_and_lossless_headers() -> None:
    lossy = b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00" + b"\x00" * 6
    lossy += struct.pack("<HH", 640, 480)
    assert media.image_size(lossy) == (640, 480)
    bits = (640 - 1) | ((480 - 1) << 14)
    lossless = b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + bits.to_bytes(4, "little")
    assert media.image_size(lossless) == (640, 480)


def test_unknown_bytes_have_no_size() -> None:
    assert media.image_size(b"not an image at all") is None
    assert media.pdf_pages(b"%PDF-1.7 nothing here") is None
    assert media.audio_seconds(b"\x00" * 64) is None
    assert media.video_seconds(b"\x00" * 64) is None


def test_pdf_pages_and_wav_duration() -> None:
    assert media.pdf_pages(samples.pdf(7)) == 7
    # A page count no PDF has is not believed (nor handed to int()): the pages are counted.
    absurd = samples.pdf(2).replace(b"/Count 2", b"/Count " + b"9" * 5000)
    assert media.pdf_pages(absurd) == 2
    assert media.audio_seconds(samples.wav(3.5)) == pytest.approx(3.5)
    assert media.audio_seconds(samples.wav(1.0, rate=44_100)) == pytest.approx(1.0)


def test_flac_ogg_mp3_and_mp4_durations() -> None:
    rate, total = 44_100, 44_100 * 12
    streaminfo = (rate << 44) | (1 << 41) | (15 << 36) | total
    flac = b"fLaC" + b"\x00" * 14 + streaminfo.to_bytes(8, "big") + b"\x00" * 16
    assert media.audio_seconds(flac) == pytest.approx(12.0)

    vorbis_id = b"\x01vorbis" + b"\x00" * 4 + b"\x01" + struct.pack("<I", 48_000)
    first = b"OggS\x00\x02" + (0).to_bytes(8, "little") + b"\x00" * 12 + vorbis_id
    last = b"OggS\x00\x04" + (48_000 * 5).to_bytes(8, "little") + b"\x00" * 12
    assert media.audio_seconds(first + b"\x00" * 100 + last) == pytest.approx(5.0)

    frame = bytes([0xFF, 0xFB, 0x90, 0x00])  # MPEG-1 Layer III, 128 kbit/s
    mp3 = frame + b"\x00" * (16_000 * 4 - 4)  # 64,000 bytes at 16,000 bytes a second
    assert media.audio_seconds(mp3) == pytest.approx(4.0)

    mvhd = b"mvhd" + b"\x00" * 12 + struct.pack(">II", 600, 600 * 42)
    mp4 = b"\x00\x00\x00\x20ftypisom" + b"\x00" * 20 + b"\x00\x00\x00\x6cmoov\x00\x00\x00\x64"
    assert media.video_seconds(mp4 + mvhd) == pytest.approx(42.0)


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "tiles"),
    [
        (384, 384, 1),
        (200, 100, 1),
        (385, 200, 2),
        (1024, 1024, 4),
        (1920, 1080, 6),
        (3840, 2160, 15),
    ],
)
def test_gemini_2_image_tiles(width: int, height: int, tiles: int) -> None:
    assert token_rules.image_tokens("2", width, height, None) == 258 * tiles


def test_every_figure_names_its_source_and_date() -> None:
    for key, figure in token_rules.FIGURES.items():
        assert figure.source.startswith("https://"), key
        assert len(figure.checked) == 10 and figure.checked[4] == "-", key


def test_gemini_3_budgets_request_level_and_per_part() -> None:
    image = samples.png(2000, 2000)
    part = types.Part.from_bytes(data=image, mime_type="image/png")
    default = estimate_prompt([part], model="gemini-3-pro-preview")
    assert default.tokens[token_rules.IMAGE] == 1120
    low = estimate_prompt([part], model="gemini-3-pro-preview", media_resolution="LOW")
    assert low.tokens[token_rules.IMAGE] == 280
    ultra = types.Part.from_bytes(
        data=image,
        mime_type="image/png",
        media_resolution=types.PartMediaResolutionLevel.MEDIA_RESOLUTION_ULTRA_HIGH,
    )
    mixed = estimate_prompt([ultra, part], model="gemini-3-pro-preview", media_resolution="LOW")
    assert mixed.tokens[token_rules.IMAGE] == 2240 + 280  # the part's own setting wins
    pages = estimate_prompt(
        [types.Part.from_bytes(data=samples.pdf(3), mime_type="application/pdf")],
        model="gemini-3-flash",
    )
    assert pages.tokens[token_rules.DOCUMENT] == 3 * 560


def test_every_shape_of_contents_is_priced_alike() -> None:
    image = samples.png(1024, 1024)
    as_part = ["Describe this", types.Part.from_bytes(data=image, mime_type="image/png")]
    as_snake = [
        {"text": "Describe this"},
        {"inline_data": {"data": image, "mime_type": "image/png"}},
    ]
    as_rest = {
        "role": "user",
        "parts": [
            {"text": "Describe this"},
            {"inlineData": {"data": base64.b64encode(image).decode(), "mimeType": "image/png"}},
        ],
    }
    expected = {token_rules.TEXT: 4, token_rules.IMAGE: 1032}
    as_content = types.Content(role="user", parts=[types.Part(text="Describe this"), as_part[1]])
    for contents in (as_part, as_snake, as_rest, as_content):
        assert estimate_prompt(contents, model="gemini-2.5-flash").tokens == expected
    assert estimate_tokens(as_part) == 1036


def test_file_uris_and_unknown_formats_are_left_unsized() -> None:
    estimate = estimate_prompt(
        [
            "Watch this",
            types.Part.from_uri(file_uri="gs://b/v.mp4", mime_type="video/mp4"),
            types.Part.from_bytes(data=b"\x00" * 32, mime_type="image/x-unknown"),
        ]
    )
    assert [(m.modality, m.uri) for m in estimate.unsized] == [
        (token_rules.VIDEO, "gs://b/v.mp4"),
        (token_rules.IMAGE, None),
    ]
    assert estimate.tokens == {token_rules.TEXT: 3}


# -- calibration per modality ------------------------------------------------------------------


def test_image_calls_do_not_move_the_text_calibration() -> None:
    calibration = Calibration()
    text_only = TokenEstimate({"TEXT": 100})
    before = calibration.cost(100, text_only)
    for _ in range(100):
        # The image is under-estimated by half; the text is right.
        mixed = TokenEstimate({"TEXT": 10, "IMAGE": 500})
        calibration.learn(510, mixed, 1010, {"TEXT": 10, "IMAGE": 1000})
    assert calibration.cost(100, text_only) == before
    assert calibration.ratio("IMAGE") == pytest.approx(2.0)


def test_without_details_the_total_corrects_the_call() -> None:
    calibration = Calibration()
    for _ in range(50):
        calibration.learn(100, TokenEstimate({"TEXT": 100}), 150, None)
    assert calibration.ratio("TEXT") == pytest.approx(1.5)
    assert calibration.cost(100, None) == 150  # a bare number is text


def test_counted_media_are_booked_as_they_are_and_averages_are_learned() -> None:
    calibration = Calibration()
    counted = TokenEstimate({"TEXT": 10}, fixed={"VIDEO": 5000})
    assert calibration.cost(5010, counted) == 5010
    calibration.learn(5010, counted, 5010, {"TEXT": 10, "VIDEO": 5000})
    assert "VIDEO" not in calibration.ratios()  # nothing estimated, nothing to calibrate
    averaged = TokenEstimate({"TEXT": 10}, fixed={"VIDEO": 15780}, averaged={"VIDEO": 2})
    calibration.learn(15790, averaged, 8010, {"TEXT": 10, "VIDEO": 8000})
    assert calibration.average("VIDEO") == pytest.approx(4000)
