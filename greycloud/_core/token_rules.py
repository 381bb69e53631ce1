"""How many prompt tokens a piece of media costs, by model family: ONE table of published figures.

Every figure the estimate uses is one row of ``FIGURES``, with the page it comes from and the
date it was checked, so that updating a figure is a one-line change. The emulator counts with
the same table (it is a model of the service), so the two agree by construction; the real
service is what calibration (``greycloud._limiter``) measures the table against.

Families: "3" for Gemini 3 models (``media_resolution`` budgets per image, page or frame),
"2" for everything else (Gemini 2.x: tiles of images, per-second audio and video).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

TEXT = "TEXT"
IMAGE = "IMAGE"
AUDIO = "AUDIO"
VIDEO = "VIDEO"
DOCUMENT = "DOCUMENT"
MODALITIES = (TEXT, IMAGE, AUDIO, VIDEO, DOCUMENT)

RESOLUTIONS = ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")

_TOKENS = "https://ai.google.dev/gemini-api/docs/tokens"
_IMAGES = "https://ai.google.dev/gemini-api/docs/image-understanding"
_PDFS = "https://ai.google.dev/gemini-api/docs/document-processing"
_BUDGETS = "https://ai.google.dev/gemini-api/docs/media-resolution"
_LOCAL = "https://dev.to/googlecloud/how-to-count-gemini-tokens-locally-3cal"
_CHECKED = "2026-12-01"


@dataclass(frozen=True)
class Figure:
    """One published number: its value, what it counts, where it is written and when checked."""

    value: float
    unit: str
    source: str
    checked: str = _CHECKED


# fmt: off
FIGURES: dict[str, Figure] = {
    # Gemini 2.x (and any model that is not Gemini 3)
    "2.text.chars_per_token": Figure(4, "characters per text token", _TOKENS),
    "2.image.small_side": Figure(384, "px: both sides at most this cost one tile", _TOKENS),
    "2.image.tile_tokens": Figure(258, "tokens per image tile", _IMAGES),
    "2.image.tile_max": Figure(768, "px: largest tile side", _IMAGES),
    "2.image.tile_min": Figure(256, "px: smallest tile side", _TOKENS),
    "2.image.tile_divisor": Figure(1.5, "tile side = shorter image side / this", _TOKENS),
    "2.document.page": Figure(258, "tokens per PDF page", _PDFS),
    "2.audio.second": Figure(32, "tokens per second of audio", _TOKENS),
    "2.video.second": Figure(263, "tokens per second of video", _TOKENS),
    # Gemini 3: media_resolution budgets (request-level or per part)
    "3.image.LOW": Figure(280, "tokens per image", _BUDGETS),
    "3.image.MEDIUM": Figure(560, "tokens per image", _BUDGETS),
    "3.image.HIGH": Figure(1120, "tokens per image (the default)", _BUDGETS),
    "3.image.ULTRA_HIGH": Figure(2240, "tokens per image (per part only)", _BUDGETS),
    "3.document.LOW": Figure(280, "tokens per PDF page", _BUDGETS),
    "3.document.MEDIUM": Figure(560, "tokens per PDF page (the default)", _BUDGETS),
    "3.document.HIGH": Figure(1120, "tokens per PDF page", _BUDGETS),
    "3.video.LOW": Figure(70, "tokens per video frame", _BUDGETS),
    "3.video.MEDIUM": Figure(70, "tokens per video frame (the default)", _BUDGETS),
    "3.video.HIGH": Figure(280, "tokens per video frame", _BUDGETS),
    "3.video.frames_per_second": Figure(1, "frames sampled per second of video", _BUDGETS),
    "3.audio.second": Figure(25, "tokens per second of audio", _LOCAL),
}
DEFAULT_RESOLUTION = {IMAGE: "HIGH", DOCUMENT: "MEDIUM", VIDEO: "MEDIUM"}  # Gemini 3, per modality
# What a part of unknown size is booked at before anything was learned about its modality
# (media_token_estimate="average"): one image, a 10-page PDF, a minute of audio or video.
UNSIZED_PRIOR = {IMAGE: 1, DOCUMENT: 10, AUDIO: 60.0, VIDEO: 60.0}
# fmt: on

_GEMINI_VERSION = re.compile(r"gemini-(\d+)")


def figure(key: str) -> float:
    return FIGURES[key].value


def model_family(model: str) -> str:
    """ "3" for Gemini 3 and later, "2" otherwise (unknown names take the 2.x rules)."""
    match = _GEMINI_VERSION.search(model.rsplit("/", 1)[-1])
    return "3" if match is not None and int(match.group(1)) >= 3 else "2"


def modality_of(mime_type: str) -> str:
    """The modality the service reports for a MIME type (PDF and other files: DOCUMENT)."""
    kind = mime_type.split("/", 1)[0].lower()
    if kind == "image":
        return IMAGE
    if kind == "audio":
        return AUDIO
    if kind == "video":
        return VIDEO
    if kind == "text":
        return TEXT
    return DOCUMENT


def resolution_name(value: Any) -> str | None:
    """ "LOW", "MEDIUM", "HIGH", "ULTRA_HIGH" or None, from any spelling the SDK or REST use.

    Accepts an enum, a string (``MEDIA_RESOLUTION_LOW`` or ``low``) or a per-part resolution
    (an object or dict with a ``level``).
    """
    if value is None:
        return None
    level = getattr(value, "level", None)
    if isinstance(value, dict):
        level = value.get("level")
    if level is not None:
        value = level
    text = str(getattr(value, "value", value)).upper().removeprefix("MEDIA_RESOLUTION_")
    return text if text in RESOLUTIONS else None


def text_tokens(chars: int) -> int:
    return math.ceil(chars / figure("2.text.chars_per_token"))


def image_tokens(family: str, width: int, height: int, resolution: str | None) -> int:
    """Tokens for one image of ``width`` × ``height`` pixels."""
    if family == "3":
        return int(figure(f"3.image.{_resolution(IMAGE, resolution)}"))
    per_tile = int(figure("2.image.tile_tokens"))
    small = figure("2.image.small_side")
    if width <= small and height <= small:
        return per_tile
    tile = min(figure("2.image.tile_max"), min(width, height) / figure("2.image.tile_divisor"))
    tile = max(figure("2.image.tile_min"), tile)
    return math.ceil(width / tile) * math.ceil(height / tile) * per_tile


def document_tokens(family: str, pages: int, resolution: str | None) -> int:
    if family == "3":
        key = _resolution(DOCUMENT, resolution)
        key = "HIGH" if key == "ULTRA_HIGH" else key
        return pages * int(figure(f"3.document.{key}"))
    return pages * int(figure("2.document.page"))


def audio_tokens(family: str, seconds: float) -> int:
    return math.ceil(seconds * figure(f"{family}.audio.second"))


def video_tokens(family: str, seconds: float, resolution: str | None) -> int:
    if family == "3":
        key = _resolution(VIDEO, resolution)
        key = "HIGH" if key == "ULTRA_HIGH" else key
        frames = max(1, math.ceil(seconds * figure("3.video.frames_per_second")))
        return frames * int(figure(f"3.video.{key}"))
    return math.ceil(seconds * figure("2.video.second"))


def unsized_prior(family: str, modality: str, resolution: str | None) -> int:
    """A first guess for a part whose size cannot be read locally (before any was learned)."""
    amount = UNSIZED_PRIOR.get(modality)
    if modality == IMAGE:
        return image_tokens(family, 1024, 1024, resolution)
    if modality == DOCUMENT:
        return document_tokens(family, int(amount or 1), resolution)
    if modality == AUDIO:
        return audio_tokens(family, float(amount or 0))
    if modality == VIDEO:
        return video_tokens(family, float(amount or 0), resolution)
    return 1


def _resolution(modality: str, resolution: str | None) -> str:
    return resolution if resolution is not None else DEFAULT_RESOLUTION[modality]
