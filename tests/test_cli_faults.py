"""``greycloud run`` under hostile input and a failing environment (issue 16, defects 1, 3, 6).

Each test goes through the real command against the emulator: bad lines are refused by the
input check before any request, a disk that fills up or a signal during start-up is one line
on stderr and an exit code, and an output past 2 GiB resumes without losing a line.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from greycloud.testing import VertexEmulator
from tests.cli_support import write_lines
from tests.test_cli import COMMAND, cli_env, invoke, prompt_of, question, read_output

GOOD = [{"id": f"g{n}", "prompt": question(f"g{n}")} for n in range(3)]


def good_then(bad_line: str) -> list[dict[str, object] | str]:
    """Good lines around a bad one (line 2), so a check made line by line at run time would
    already have sent line 1."""
    return [GOOD[0], bad_line, *GOOD[1:]]


# -- an output past 2 GiB (defect 1) ------------------------------------------------------------

BIG_LINE_TEXT = 64 << 20  # characters of text in each big answer
BIG_LINES = 33  # 33 x 64 MiB: past the 2 GiB that one read or write returns on Linux
TORN = '{"id": "tail-torn", "te'


@pytest.fixture
def roomy_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for a few GiB of short-lived files: in memory (/dev/shm) when it has room,
    so the test costs memory copies rather than disk writes and fsyncs."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 8 * 2**30:
        with tempfile.TemporaryDirectory(dir=shm) as directory:
            yield Path(directory)
    else:
        yield tmp_path


@pytest.mark.slow  # writes and reads back more than 2 GiB: tens of seconds on a busy machine
def test_resume_past_2_gib_keeps_every_line(
    vertex_emulator: VertexEmulator, tmp_path: Path, roomy_dir: Path
) -> None:
    """Resuming used to read the output with one pread, which returns at most 2 GiB - 4 KiB:
    the lines after that were taken for a torn line and cut off, then paid for again."""
    output = roomy_dir / "out.jsonl"
    text = "a" * BIG_LINE_TEXT
    with output.open("w") as handle:
        for n in range(BIG_LINES):
            handle.write(json.dumps({"id": f"big{n}", "text": text, "error": None}) + "\n")
        handle.write(json.dumps({"id": "tail-ok", "text": "kept", "error": None}) + "\n")
        handle.write(TORN)  # what a kill -9 mid-write leaves
    del text
    size = output.stat().st_size
    assert size > 2**31
    ids = [f"big{n}" for n in range(BIG_LINES)] + ["tail-ok", "tail-torn", "new"]
    prompts = write_lines(tmp_path / "in.jsonl", ({"id": i, "prompt": question(i)} for i in ids))

    result = subprocess.run(
        [*COMMAND, "run", str(prompts), "-o", str(output), "--rpm", "100000"],
        env=cli_env(vertex_emulator),
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr
    assert f"{BIG_LINES + 1} already answered" in result.stderr
    assert f"removed a torn last line ({len(TORN)} bytes)" in result.stderr
    asked = sorted(prompt_of(r) for r in vertex_emulator.requests())
    assert asked == [question("new"), question("tail-torn")]
    # The big lines are as they were; after them come the old last line and the two new ones.
    with output.open("rb") as handle:
        handle.seek(size - 200_000)
        tail = handle.read().split(b"\n")
    assert tail[-1] == b""
    assert json.loads(tail[-4]) == {"id": "tail-ok", "text": "kept", "error": None}
    assert sorted(json.loads(line)["id"] for line in tail[-3:-1]) == ["new", "tail-torn"]
    assert tail[-5].endswith(b'"error": null}')  # the end of the last big line


# -- input that would fail later is refused up front (defects 3 and 6) ---------------------------


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": "\\ud800", "prompt": "x"}', "'id' holds a lone surrogate, \\ud800"),
        (
            '{"id": 1, "prompt": "x", "metadata": {"n": ["\\udfff"]}}',
            "'metadata.n[0]' holds a lone",
        ),
        ('{"id": 1, "prompt": "a \\ud83d b"}', "'prompt' holds a lone surrogate"),
        ('{"id": 1, "prompt": "x", "metadata": {"score": NaN}}', "'metadata.score' is NaN"),
        ('{"id": 1, "prompt": "x", "metadata": [1e400]}', "'metadata[0]' is Infinity"),
        ('{"id": ' + "7" * 5000 + ', "prompt": "x"}', "holds a number of more than 4300 digits"),
        (
            '{"id": 1, "prompt": "x", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "nested more than 100 levels",
        ),
        (
            '{"id": 1, "prompt": "' + "word " * 800 + '"}',
            "needs about 1000 input tokens, more than the whole token quota of 500 per minute",
        ),
    ],
    ids=[
        "surrogate-id",
        "surrogate-metadata",
        "surrogate-prompt",
        "nan",
        "infinity",
        "5000-digits",
        "deep-nesting",
        "over-tpm",
    ],
)
def test_a_line_that_would_fail_later_is_refused_before_anything_is_sent(
    vertex_emulator: VertexEmulator, tmp_path: Path, bad_line: str, message: str
) -> None:
    prompts = write_lines(tmp_path / "in.jsonl", good_then(bad_line))
    output = tmp_path / "out.jsonl"

    result = invoke(vertex_emulator, "run", str(prompts), "-o", str(output), "--tpm", "500")

    assert result.exit_code == 2, result.output
    assert f"line 2: {message}" in result.output
    assert isinstance(result.exception, SystemExit)  # no other exception escaped
    assert vertex_emulator.requests() == []
    assert not output.exists()


def test_skip_invalid_runs_the_rest_and_every_output_line_is_json(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    bad = ['{"id": "\\ud800", "prompt": "x"}', '{"id": 9, "prompt": "x", "metadata": NaN}']
    prompts = write_lines(tmp_path / "in.jsonl", [GOOD[0], *bad, *GOOD[1:]])
    output = tmp_path / "out.jsonl"

    result = invoke(vertex_emulator, "run", str(prompts), "-o", str(output), "--skip-invalid")

    assert result.exit_code == 1, result.output
    assert "2 invalid input line(s) were skipped" in result.output
    assert sorted(read_output(output)) == ["g0", "g1", "g2"]  # read_output parses every line
    output.read_bytes().decode("utf-8")  # and the file is valid UTF-8


# -- the environment fails (defect 6) ---------------------------------------------------------


def test_a_full_disk_is_one_line_and_a_rerun_finishes(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    ids = [f"d{n:03d}" for n in range(60)]
    prompts = write_lines(tmp_path / "in.jsonl", ({"id": i, "prompt": question(i)} for i in ids))
    output = tmp_path / "out.jsonl"
    # One request at a time, so that the first writes are a line or two (a group commit writes
    # every result that came in while the last write was syncing, all at once).
    command = [*COMMAND, "run", str(prompts), "-o", str(output), "--rpm", "100000"]
    command += ["--concurrency", "1"]
    room = 2_500  # bytes the output may take: a few lines, then the disk is "full"

    def full_disk() -> None:
        # EFBIG past the limit instead of being killed by SIGXFSZ, like ENOSPC on a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))

    cut = subprocess.run(
        command,
        env=cli_env(vertex_emulator),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=full_disk,
    )

    assert cut.returncode == 1, cut.stderr
    assert "Traceback" not in cut.stderr
    errors = [line for line in cut.stderr.splitlines() if line.startswith("greycloud:")]
    assert len(errors) == 1 and f"cannot write to {output}: File too large" in errors[0]
    saved = read_output(output)  # whole lines only: the failed write was cut back off
    assert 0 < len(saved) < len(ids)
    assert output.stat().st_size <= room

    rerun = subprocess.run(
        command, env=cli_env(vertex_emulator), capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(saved)} already answered" in rerun.stderr
    records = read_output(output)
    assert sorted(records) == ids
    assert {i: records[i] for i in saved} == saved  # nothing already written was lost
    asked = Counter(prompt_of(r) for r in vertex_emulator.requests())
    assert all(asked[question(i)] == 1 for i in saved)


def test_an_output_that_cannot_be_opened_is_one_line(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    prompts = write_lines(tmp_path / "in.jsonl", GOOD)
    result = invoke(vertex_emulator, "run", str(prompts), "-o", str(tmp_path))
    assert result.exit_code == 2
    assert f"greycloud: cannot open {tmp_path}: Is a directory" in result.output
    assert vertex_emulator.requests() == []


def wait_until_it_catches(process: subprocess.Popen[str], number: int) -> None:
    """Wait until the process has its own handler for signal ``number`` (Linux: SigCgt in
    /proc), i.e. until greycloud's code runs; before that the interpreter is still starting."""
    deadline = time.monotonic() + 30
    while True:
        status = Path(f"/proc/{process.pid}/status").read_text()
        caught = int(status.split("SigCgt:")[1].split()[0], 16)
        if caught & (1 << (number - 1)):
            return
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_is_one_line_without_a_traceback(
    vertex_emulator: VertexEmulator, tmp_path: Path, number: int
) -> None:
    prompts = write_lines(tmp_path / "in.jsonl", GOOD)
    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps({"id": "g0", "text": "kept", "error": None}) + "\n")
    before = output.read_bytes()
    command = [*COMMAND, "run", str(prompts), "-o", str(output), "--rpm", "100000"]
    interrupted = 0
    # From the first moment greycloud's code runs (imports, config, input check, journal).
    for delay in (0.0, 0.1, 0.25, 0.5):
        process = subprocess.Popen(
            command,
            env=cli_env(vertex_emulator),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until_it_catches(process, signal.SIGTERM)
        time.sleep(delay)
        process.send_signal(number)
        _, stderr = process.communicate(timeout=30)
        if process.returncode == 0:
            continue  # it finished before the signal came
        interrupted += 1
        assert process.returncode == 128 + number, stderr
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
        assert "interrupted" in stderr, stderr
        assert output.read_bytes().startswith(before)
        read_output(output)
    assert interrupted >= 2
