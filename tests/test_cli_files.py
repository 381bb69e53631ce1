"""The CLI's input checks and output journal on their own (no service involved)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from greycloud._cli.group_commit import GroupCommit
from greycloud._cli.journal import JournalError, JournalWriteError, OutputJournal
from greycloud._cli.prompts import parse_line
from tests.cli_support import read_prompts


def record(line_id: object, error: object = None) -> str:
    return json.dumps({"id": line_id, "text": None if error else "ok", "error": error}) + "\n"


def test_ids_keep_their_type_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "prompt": "a"}\n\n{"id": "1", "prompt": "b"}\n')
    prompts = read_prompts(path)
    assert prompts.problems == []
    assert [(line.id, line.line_number) for line in prompts.lines] == [(1, 1), ("1", 3)]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"id": true, "prompt": "a"}', "'id' must be a non-empty string or an integer"),
        ('{"id": "", "prompt": "a"}', "'id' must be"),
        ('{"id": 1, "prompt": "  "}', "'prompt' must be a non-empty string"),
        ('{"id": 1, "contents": []}', "'contents' must be a non-empty list"),
        ('{"id": 1, "contents": [3]}', "'contents'[0] must be an object or a string"),
        ('{"id": 1, "prompt": "a", "top_p": 1.5}', "'top_p' must be between 0.0 and 1.0"),
        ('{"id": 1, "prompt": "a", "seed": 1.5}', "'seed' must be an integer"),
        ('{"id": 1, "prompt": "a", "thinking_level": "max"}', "'thinking_level' must be one of"),
        ('{"id": 1, "prompt": "a", "model": 5}', "'model' must be a non-empty string"),
        ('"just a string"', "must be a JSON object, got a string"),
    ],
)
def test_bad_lines_say_what_is_wrong(text: str, problem: str) -> None:
    line, problems = parse_line(1, text)
    assert line is None
    assert any(problem in message for message in problems), problems


def test_a_torn_last_line_is_cut_away(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(record("a") + record("b") + '{"id": "c", "te')
    with OutputJournal(path) as journal:
        assert journal.repaired_bytes == len('{"id": "c", "te')
        assert journal.recorded == {"a": "ok", "b": "ok"}
        journal.append({"id": "c", "text": "x", "error": None})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "c"]


def test_drop_failed_rewrites_the_file_without_them(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(record("a") + record("b", {"type": "X"}) + record(3, {"type": "Y"}))
    with OutputJournal(path) as journal:
        assert journal.drop_failed({"b", 3, "a"}) == 2  # "a" succeeded: it stays
        assert journal.recorded == {"a": "ok"}
        journal.append({"id": "b", "text": "x", "error": None})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with OutputJournal(path), pytest.raises(JournalError, match="another greycloud run"):
        OutputJournal(path).open()


# -- the journal reads and rewrites in chunks (defect 1 of issue 16 at a small size) -----------


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1 << 20])
def test_the_journal_is_the_same_at_any_chunk_size(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "out.jsonl"
    long_text = "x" * 300  # lines longer than the chunks, and chunks holding many lines
    lines = [
        json.dumps({"id": n, "text": long_text if n % 3 else "ok", "error": None}) + "\n"
        for n in range(40)
    ]
    lines[17] = record(17, {"type": "X"})
    path.write_text("".join(lines) + '{"id": 40, "te')
    with OutputJournal(path, chunk_size=chunk_size) as journal:
        assert journal.repaired_bytes == len('{"id": 40, "te')
        assert journal.recorded == {n: "failed" if n == 17 else "ok" for n in range(40)}
        assert journal.drop_failed({17}) == 1
        journal.append({"id": 17, "text": "again", "error": None})
    kept = path.read_text().splitlines(keepends=True)
    assert kept == lines[:17] + lines[18:] + [
        json.dumps({"id": 17, "text": "again", "error": None}, separators=(",", ":")) + "\n"
    ]


def test_a_file_without_any_newline_is_one_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a", "text": "cut' + "x" * 50)
    with OutputJournal(path, chunk_size=8) as journal:
        assert journal.recorded == {}
    assert path.read_bytes() == b""


def test_a_run_that_opened_the_file_just_before_a_rewrite_locks_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second writer racing a --retry-failed rewrite must not lock the replaced file."""
    path = tmp_path / "out.jsonl"
    path.write_text(record("a") + record("b", {"type": "X"}))
    first = OutputJournal(path)
    first.open()
    real_open = os.open
    rewritten = False

    def open_then_rewrite(file: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        # The second run has opened the old file; now the first one replaces it and exits.
        nonlocal rewritten
        fd = real_open(file, flags, mode, **kwargs)
        if not rewritten and Path(file) == path:
            rewritten = True
            first.drop_failed({"b"})
            first.close()
        return fd

    second = OutputJournal(path)
    monkeypatch.setattr(os, "open", open_then_rewrite)
    second.open()
    monkeypatch.undo()
    try:
        assert rewritten
        assert second.recorded == {"a": "ok"}
        second.append({"id": "b", "text": "x", "error": None})
    finally:
        second.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]


# -- group commit: one fsync for the lines that finish together ----------------------------------


async def test_lines_finished_together_share_an_fsync_and_are_on_disk_when_reported(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.jsonl"

    async def worker(n: int) -> None:
        await output.append({"id": n, "text": "x", "error": None})
        # Reported: the line is in the file, seen through another descriptor.
        assert f'"id":{n},' in path.read_text()

    with OutputJournal(path) as journal:
        async with GroupCommit(journal) as output:
            await asyncio.gather(*(worker(n) for n in range(200)))
        assert journal.recorded == dict.fromkeys(range(200), "ok")
        assert 1 <= output.groups < 200
    assert sorted(json.loads(line)["id"] for line in path.read_text().splitlines()) == list(
        range(200)
    )


async def test_a_group_that_cannot_be_written_fails_every_waiting_line() -> None:
    failure = r"cannot write to /dev/full: No space left on device"
    with OutputJournal(Path("/dev/full")) as journal:  # every write fails, as on a full disk
        with pytest.raises(JournalWriteError, match=failure):  # also when leaving the block
            async with GroupCommit(journal) as output:
                results = await asyncio.gather(
                    *(output.append({"id": n, "text": "x", "error": None}) for n in range(5)),
                    return_exceptions=True,
                )
                with pytest.raises(JournalWriteError, match=failure):
                    output.submit({"id": 9, "text": "x", "error": None})
        assert journal.recorded == {}
    assert all(isinstance(result, JournalWriteError) for result in results)
