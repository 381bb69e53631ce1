"""The overloads give each form of call its precise type (mypy --strict on a sample)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SAMPLE = Path(__file__).parent / "typing_samples" / "streams_typed.py"


def test_each_form_of_call_has_its_precise_type() -> None:
    stdout, stderr, status = api.run(["--strict", "--no-error-summary", str(SAMPLE)])
    assert status == 0, stdout + stderr
