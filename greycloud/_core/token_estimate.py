"""A prompt's token estimate by modality, before the call (pure, no I/O).

Walks contents of every shape the SDK and the REST API accept (strings, ``Part``/``Content``
objects, their dicts in snake_case or camelCase, lists of these) and prices each part with
``token_rules``: text by its characters, inline media by the size read from its bytes
(``media``). Media whose size cannot be read here (``file_data`` URIs, unknown formats) are
listed as ``unsized`` for the caller to price: by ``countTokens`` or by a learned average.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.genai import types

from . import media
from .token_rules import (
    AUDIO,
    DOCUMENT,
    IMAGE,
    TEXT,
    VIDEO,
    audio_tokens,
    document_tokens,
    image_tokens,
    modality_of,
    model_family,
    resolution_name,
    text_tokens,
    video_tokens,
)


@dataclass(frozen=True)
class UnsizedMedia:
    """A media part whose tokens cannot be worked out locally."""

    modality: str
    mime_type: str
    uri: str | None  # None: inline bytes of a format the readers do not know
    resolution: str | None
    part: Any  # the part as given, so that it can be counted on its own


@dataclass(frozen=True)
class PromptEstimate:
    """Tokens by modality for what could be sized here, and the media that could not."""

    tokens: dict[str, int]
    unsized: tuple[UnsizedMedia, ...] = ()

    @property
    def total(self) -> int:
        return max(1, sum(self.tokens.values()))


def estimate_prompt(
    contents: Any,
    system_instruction: Any = None,
    *,
    model: str = "",
    media_resolution: Any = None,
) -> PromptEstimate:
    """The estimate for ``contents`` and ``system_instruction`` sent to ``model``.

    ``media_resolution`` is the request-level setting; Gemini 3 parts may carry their own.
    """
    if isinstance(contents, str) and (
        system_instruction is None or isinstance(system_instruction, str)
    ):
        # The common case, on every call: plain text needs no walk.
        return PromptEstimate({TEXT: text_tokens(len(contents) + len(system_instruction or ""))})
    walker = _Walker(model_family(model), resolution_name(media_resolution))
    walker.visit(contents)
    walker.visit(system_instruction)
    tokens = {TEXT: text_tokens(walker.text_chars)} if walker.text_chars else {}
    for modality, amount in walker.media_tokens.items():
        tokens[modality] = tokens.get(modality, 0) + amount
    if not tokens and not walker.unsized:
        tokens[TEXT] = 0
    return PromptEstimate(tokens, tuple(walker.unsized))


_FUNCTION_KEYS = ("functionCall", "function_call", "functionResponse", "function_response")


def _get(value: Mapping[str, Any], snake: str, camel: str) -> Any:
    found = value.get(snake)
    return value.get(camel) if found is None else found


class _Walker:
    def __init__(self, family: str, resolution: str | None) -> None:
        self.family = family
        self.resolution = resolution
        self.text_chars = 0
        self.media_tokens: dict[str, int] = {}
        self.unsized: list[UnsizedMedia] = []

    def visit(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, str):
            self.text_chars += len(value)
        elif isinstance(value, types.Part):
            self.visit_part(
                value,
                value.text,
                value.inline_data,
                value.file_data,
                value.media_resolution,
            )
            for call in (value.function_call, value.function_response):
                if call is not None:
                    self.add_json(call.model_dump(mode="json", exclude_none=True, by_alias=True))
        elif isinstance(value, types.Content):
            for part in value.parts or []:
                self.visit(part)
        elif isinstance(value, types.File):
            self.add_file(value, value.uri, value.mime_type, None)
        elif isinstance(value, Mapping):
            if "parts" in value or "role" in value:
                self.visit(value.get("parts"))
                return
            self.visit_part(
                value,
                value.get("text"),
                _get(value, "inline_data", "inlineData"),
                _get(value, "file_data", "fileData"),
                _get(value, "media_resolution", "mediaResolution"),
            )
            for key in _FUNCTION_KEYS:
                if value.get(key) is not None:
                    self.add_json(value[key])
        elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            for item in value:
                self.visit(item)

    def visit_part(
        self, part: Any, text: Any, inline: Any, file: Any, part_resolution: Any
    ) -> None:
        if isinstance(text, str):
            self.text_chars += len(text)
        # Per-part resolutions are a Gemini 3 feature; they win over the request's.
        resolution = resolution_name(part_resolution) if self.family == "3" else None
        resolution = resolution or self.resolution
        if inline is not None:
            data, mime = _blob(inline)
            self.add_inline(part, data, mime, resolution)
        if file is not None:
            if isinstance(file, Mapping):
                uri, mime = _get(file, "file_uri", "fileUri"), _get(file, "mime_type", "mimeType")
            else:
                uri, mime = file.file_uri, file.mime_type
            self.add_file(part, uri, mime, resolution)

    def add_json(self, value: Any) -> None:
        # Function calls and replies count as their JSON, as the model reads them.
        self.text_chars += len(json.dumps(value, separators=(",", ":")))

    def add_inline(self, part: Any, data: bytes, mime: str, resolution: str | None) -> None:
        modality = modality_of(mime)
        if modality == TEXT:
            self.text_chars += len(data)
            return
        tokens = self.size_of(modality, data, resolution)
        if tokens is None:
            self.unsized.append(UnsizedMedia(modality, mime, None, resolution, part))
        else:
            self.media_tokens[modality] = self.media_tokens.get(modality, 0) + tokens

    def add_file(self, part: Any, uri: Any, mime: Any, resolution: str | None) -> None:
        mime = str(mime or "application/octet-stream")
        modality = modality_of(mime)
        self.unsized.append(UnsizedMedia(modality, mime, str(uri or ""), resolution, part))

    def size_of(self, modality: str, data: bytes, resolution: str | None) -> int | None:
        family = self.family
        if modality == IMAGE:
            size = media.image_size(data)
            return None if size is None else image_tokens(family, *size, resolution)
        if modality == DOCUMENT:
            pages = media.pdf_pages(data)
            return None if pages is None else document_tokens(family, pages, resolution)
        if modality == AUDIO:
            seconds = media.audio_seconds(data)
            return None if seconds is None else audio_tokens(family, seconds)
        if modality == VIDEO:
            seconds = media.video_seconds(data)
            return None if seconds is None else video_tokens(family, seconds, resolution)
        return None


def _blob(inline: Any) -> tuple[bytes, str]:
    """(bytes, MIME type) of inline data: a ``Blob`` or its dict, data as bytes or base64."""
    if isinstance(inline, Mapping):
        data, mime = inline.get("data"), _get(inline, "mime_type", "mimeType")
    else:
        data, mime = inline.data, inline.mime_type
    if isinstance(data, str):
        # The SDK sends URL-safe base64; other clients send the standard alphabet.
        text = data.replace("-", "+").replace("_", "/")
        try:
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            data = b""
    return (bytes(data) if isinstance(data, (bytes, bytearray)) else b""), str(mime or "")
