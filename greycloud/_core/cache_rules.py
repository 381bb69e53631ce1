"""Context-cache rules checked before a request is sent (pure, no I/O).

Minimum cacheable sizes, as documented (checked 2025):
- Vertex AI, "Context caching overview": explicit and implicit caching requests "must contain a
  minimum of 2,048 tokens" (Gemini 2.x and later); Gemini 1.5 caches needed 32,769 tokens.
- Gemini Developer API, "Context caching": Gemini 2.5 Flash and 3 Flash 1,024 tokens,
  Gemini 2.5 Pro and 3 Pro 4,096 tokens.
A model that matches no entry gets the conservative (lowest documented) 1,024: the service has
the last word, and a check here must never refuse a cache the service would accept.
"""

from __future__ import annotations

import mimetypes
import re

DEFAULT_MIN_CACHE_TOKENS = 1024

# (pattern on the model id, minimum tokens); the first match wins.
_VERTEX_MINIMUMS: tuple[tuple[str, int], ...] = (
    (r"^gemini-1\.5-", 32_769),
    (r"^gemini-(2|3)(\.\d+)?-", 2048),
)
_DEVELOPER_MINIMUMS: tuple[tuple[str, int], ...] = (
    (r"^gemini-1\.5-", 32_768),
    (r"^gemini-(2\.5|3)(\.\d+)?-pro", 4096),
    (r"^gemini-(2\.5|3)(\.\d+)?-flash", 1024),
)

# Types Gemini reads from Cloud Storage that mimetypes may not know or may name differently.
_EXTRA_TYPES = {
    ".md": "text/markdown",
    ".jsonl": "application/jsonl",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".mkv": "video/x-matroska",
    ".py": "text/x-python",
}


def model_id(model: str) -> str:
    """``publishers/google/models/gemini-2.5-flash`` -> ``gemini-2.5-flash``."""
    return model.rsplit("/", 1)[-1]


def min_cache_tokens(model: str, vertexai: bool = True) -> int:
    """The smallest cache, in tokens, ``model`` accepts on Vertex AI or the Developer API."""
    name = model_id(model).lower()
    for pattern, minimum in _VERTEX_MINIMUMS if vertexai else _DEVELOPER_MINIMUMS:
        if re.match(pattern, name):
            return minimum
    return DEFAULT_MIN_CACHE_TOKENS


def guess_mime_type(uri: str) -> str | None:
    """The MIME type of a file from its name's extension, or None when it cannot be told."""
    name = uri.rsplit("/", 1)[-1].lower()
    _, dot, extension = name.rpartition(".")
    if not dot:
        return None
    known = _EXTRA_TYPES.get(f".{extension}")
    return known or mimetypes.guess_type(name, strict=False)[0]
