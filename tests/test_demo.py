"""``make demo`` opens by saying where its answers come from and what its ``|`` marks are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_says_its_answers_are_the_emulators_and_what_bars_mean() -> None:
    # Read only as far as the first stream; the rest of the tour is not this test's business.
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        for line in demo.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("sync stream:"):
                break
    finally:
        demo.kill()
        demo.wait()

    opening = " ".join(lines[:4])
    assert "emulator" in opening and "not by a model" in opening
    assert "each | marks where one streamed chunk ends and the next begins" in opening
    stream = lines[-1].removeprefix("sync stream:").strip()
    chunks = stream.split("|")
    assert chunks[-1] == "" and len(chunks) > 2  # one bar after every chunk
    assert all(chunk for chunk in chunks[:-1])
