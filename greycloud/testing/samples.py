"""Small, valid media files made in memory, for tests and benchmarks of multimodal prompts.

Each writer produces the real container format (a PNG that image viewers open, a WAV that
players play) in a few bytes per pixel or sample, with no imaging library:

    png(1024, 768)           # a flat grey image
    pdf(pages=3)             # a PDF with three empty pages
    wav(seconds=2.5)         # 2.5 s of silence, 16 kHz mono
"""

from __future__ import annotations

import struct
import zlib


def png(width: int, height: int) -> bytes:
    """A flat grey ``width`` × ``height`` PNG (8-bit greyscale, one IDAT)."""
    row = b"\x00" + b"\x80" * width  # filter byte, then the pixels
    pixels = zlib.compress(row * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + (_png_chunk(b"IEND", b""))
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def gif(width: int, height: int) -> bytes:
    """A one-colour ``width`` × ``height`` GIF89a."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x80\x80\x80\x00\x00\x00"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    # LZW data with minimum code size 2: clear code, one pixel, end code (decoders pad the rest).
    return b"GIF89a" + screen + image + b"\x02\x02\x44\x01\x00" + b"\x3b"


def jpeg(width: int, height: int) -> bytes:
    """A baseline JPEG header of ``width`` × ``height`` (JFIF, one grey component).

    The markers a reader walks to the frame size are all real; the scan itself is a stub, so
    this is for size readers, not decoders.
    """
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    table = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes([1] * 64)
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + table + frame + b"\xff\xd9"


def webp(width: int, height: int) -> bytes:
    """An extended-format (VP8X) WebP header of ``width`` × ``height``."""
    body = (
        b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    )
    chunk = b"VP8X" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def pdf(pages: int) -> bytes:
    """A PDF 1.4 document with ``pages`` empty A4 pages (and a valid cross-reference table)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (3 + n) for n in range(pages))
        + b"] /Count %d >>" % pages,
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def wav(seconds: float, rate: int = 16_000) -> bytes:
    """``seconds`` of silence as a 16-bit mono PCM WAV at ``rate`` samples per second."""
    samples = round(seconds * rate)
    data = b"\x00\x00" * samples
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body
