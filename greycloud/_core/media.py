"""Sizes of media read from the first bytes of a file: no decoding, no I/O (pure).

Images give their pixel dimensions (PNG, JPEG, GIF, WebP), PDFs their page count, audio its
duration (WAV, MP3, FLAC, OGG) and video its duration (MP4/MOV). Each reader returns None for
bytes it cannot make sense of: the caller then treats the part as one of unknown size.
"""

from __future__ import annotations

import re
import struct

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
# A count of more than nine digits is no real page count (and no int() should see it).
_PDF_COUNT = re.compile(
    rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d{1,9})(?!\d)"
    rb"|/Count\s+(\d{1,9})(?!\d)[^>]*?/Type\s*/Pages\b"
)
# MPEG-1/2 Layer III bit rates (kbit/s) by version and index.
_MP3_RATES_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_MP3_RATES_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from a PNG, JPEG, GIF or WebP header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers up to the first start-of-frame, which holds the size."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        is_frame = 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)
        if is_frame and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def pdf_pages(data: bytes) -> int | None:
    """Pages of a PDF: the page tree's /Count, else the page objects found in the file.

    Objects inside compressed object streams are invisible to this scan: such a file gives
    None (unknown) unless its page tree is in the clear.
    """
    if not data.startswith(b"%PDF"):
        return None
    counts = [int(a or b) for a, b in _PDF_COUNT.findall(data)]
    if counts:
        return max(counts)  # the root of the page tree counts every page
    pages = len(_PDF_PAGE.findall(data))
    return pages or None


def audio_seconds(data: bytes) -> float | None:
    """Duration of a WAV, MP3, FLAC or OGG (Vorbis/Opus) file, from its headers."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav_seconds(data)
    if data[:4] == b"fLaC":
        return _flac_seconds(data)
    if data[:4] == b"OggS":
        return _ogg_seconds(data)
    return _mp3_seconds(data)


def _wav_seconds(data: bytes) -> float | None:
    position = 12
    byte_rate = 0
    while position + 8 <= len(data):
        chunk, size = (
            data[position : position + 4],
            int.from_bytes(data[position + 4 : position + 8], "little"),
        )
        if chunk == b"fmt " and position + 20 <= len(data):
            byte_rate = int.from_bytes(data[position + 16 : position + 20], "little")
        elif chunk == b"data":
            size = min(size, len(data) - position - 8)
            return size / byte_rate if byte_rate else None
        position += 8 + size + (size & 1)
    return None


def _flac_seconds(data: bytes) -> float | None:
    # STREAMINFO is the first metadata block: 20 bits of sample rate, 36 bits of samples.
    if len(data) < 26:
        return None
    bits = int.from_bytes(data[18:26], "big")
    rate = bits >> 44
    samples = bits & ((1 << 36) - 1)
    return samples / rate if rate else None


def _ogg_seconds(data: bytes) -> float | None:
    """The last page's granule position over the stream's sample rate (Opus: always 48 kHz)."""
    if b"OpusHead" in data[:80]:
        rate = 48000
    else:
        marker = data.find(b"\x01vorbis", 0, 80)
        if marker < 0 or marker + 16 > len(data):
            return None
        rate = int.from_bytes(data[marker + 12 : marker + 16], "little")
    last = data.rfind(b"OggS")
    if last < 0 or last + 14 > len(data) or not rate:
        return None
    granule = int.from_bytes(data[last + 6 : last + 14], "little")
    return granule / rate


def _mp3_seconds(data: bytes) -> float | None:
    """Constant-bit-rate estimate: audio bytes over the first frame's bit rate."""
    position = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = data[6:10]
        position = 10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3])
    limit = min(len(data) - 4, position + 4096)
    while position < limit:
        if data[position] == 0xFF and data[position + 1] & 0xE0 == 0xE0:
            header = int.from_bytes(data[position : position + 4], "big")
            version = (header >> 19) & 3
            layer = (header >> 17) & 3
            rate_index = (header >> 12) & 15
            if version != 1 and layer == 1 and rate_index not in (0, 15):
                rates = _MP3_RATES_V1 if version == 3 else _MP3_RATES_V2
                return (len(data) - position) * 8 / (rates[rate_index] * 1000)
        position += 1
    return None


def video_seconds(data: bytes) -> float | None:
    """Duration of an MP4/MOV file from its movie header (``mvhd``), when it is at the front."""
    marker = data.find(b"mvhd")
    if marker < 4 or marker + 24 > len(data):
        return None
    version = data[marker + 4]
    if version == 1 and marker + 36 <= len(data):
        scale = int.from_bytes(data[marker + 24 : marker + 28], "big")
        duration = int.from_bytes(data[marker + 28 : marker + 36], "big")
    else:
        scale = int.from_bytes(data[marker + 16 : marker + 20], "big")
        duration = int.from_bytes(data[marker + 20 : marker + 24], "big")
    return duration / scale if scale else None
