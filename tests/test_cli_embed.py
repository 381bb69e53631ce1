"""``greycloud embed`` end to end against the emulator: real processes for kill -9 and resume."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from greycloud._cli.embed import embed_line_parser, group_lines
from greycloud._cli.prompts import PromptLine
from greycloud.cli import app
from greycloud.testing import Fault, RequestRecord, VertexEmulator
from tests.cli_support import write_lines
from tests.test_cli import COMMAND, cli_env, count_lines, read_output, wait_for_lines

MODEL = "gemini-embedding-001"


def texts_of(record: RequestRecord) -> list[str]:
    body = record.body
    assert isinstance(body, dict)
    requests = body.get("requests", [body])
    return [part["text"] for r in requests for part in r["content"]["parts"]]


def embedding_calls(emulator: VertexEmulator) -> list[RequestRecord]:
    return [r for r in emulator.requests() if r.model == MODEL]


def test_embed_writes_one_vector_per_line_and_isolates_a_bad_line(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    lines = [{"id": i, "text": f"passage {i}", "metadata": {"n": i}} for i in range(250)]
    lines.append({"id": "same", "text": "passage 7"})
    lines.append(
        {
            "id": "doc",
            "contents": [{"text": "a titled "}, "document"],
            "task_type": "retrieval_document",
            "title": "Title",
        }
    )
    source = write_lines(tmp_path / "in.jsonl", lines)
    output = tmp_path / "out.jsonl"
    # A 429 on the request that carries passage 120, and a text the service refuses for good.
    vertex_emulator.inject(
        Fault.status(429, retry_delay=0.01), match=lambda r: "passage 120" in texts_of(r)
    )
    vertex_emulator.inject(
        Fault.status(400, "unsupported text"),
        times=None,
        match=lambda r: "passage 42" in texts_of(r),
    )

    result = CliRunner().invoke(
        app,
        ["embed", str(source), "-o", str(output), "--dimensions", "8", "--rpm", "100000"],
        env=cli_env(vertex_emulator),
    )

    assert result.exit_code == 1, result.stderr  # the one line that failed for good
    records = read_output(output)
    assert sorted(map(str, records)) == sorted(str(line["id"]) for line in lines)
    assert records[42]["error"]["code"] == 400 and records[42]["embedding"] is None
    for line_id, record in records.items():
        if line_id != 42:
            assert record["error"] is None, record
            assert len(record["embedding"]) == 8 and record["model"] == MODEL
            assert record["tokens"] > 0
    assert records["same"]["embedding"] == records[7]["embedding"]
    assert records[5]["metadata"] == {"n": 5}
    assert records[120]["attempts"] == 2
    doc = [r for r in embedding_calls(vertex_emulator) if "document" in texts_of(r)]
    assert doc and doc[0].body["embedContentConfig"] == {
        "taskType": "RETRIEVAL_DOCUMENT",
        "title": "Title",
        "outputDimensionality": 8,
    }
    assert "429s 1" in result.stderr


def test_embed_summary_gives_the_tokens_and_their_estimated_cost(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"id": i, "text": f"text {i}"} for i in range(30)])
    output = tmp_path / "out.jsonl"
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {MODEL: {"input": 1000.0, "output": 0}}}))
    # A retried request is counted once: its 429 carries no tokens.
    vertex_emulator.inject(Fault.status(429, retry_delay=0.01), match=lambda r: r.model == MODEL)

    result = CliRunner().invoke(
        app,
        ["embed", str(source), "-o", str(output), "--rpm", "100000", "--pricing", str(prices)],
        env=cli_env(vertex_emulator),
    )

    assert result.exit_code == 0, result.stderr
    tokens = sum(record["tokens"] for record in read_output(output).values())
    assert tokens > 0
    assert f"tokens: {tokens:,} input (0 cached), 0 output, 0 thinking" in result.stderr
    cost = round(tokens * 1000.0 / 1_000_000, 4)
    assert f"estimated cost ${cost:,.4f}" in result.stderr


def test_sigkill_mid_run_then_rerun_embeds_each_remaining_line_once(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    ids = [f"t{number:04d}" for number in range(2_000)]
    source = write_lines(tmp_path / "in.jsonl", ({"id": i, "text": f"text {i}"} for i in ids))
    output = tmp_path / "out.jsonl"
    command = [*COMMAND, "embed", str(source), "-o", str(output), "--dimensions", "4"]
    command += ["--rpm", "100000", "--concurrency", "1"]
    vertex_emulator.latency = 0.1  # 20 requests of 100 lines: about 2 s of work

    process = subprocess.Popen(
        command,
        env=cli_env(vertex_emulator),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_for_lines(output, 300, process)
    process.kill()
    process.communicate()
    assert 300 <= count_lines(output) < 2_000, "the kill did not land mid-run"
    with output.open("ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b'{"id":"t1')
    done_before = set(read_output_prefix(output))
    vertex_emulator.reset()

    rerun = subprocess.run(
        command, env=cli_env(vertex_emulator), capture_output=True, text=True, timeout=60
    )

    assert rerun.returncode == 0, rerun.stderr
    assert "repaired" in rerun.stderr
    records = read_output(output)
    assert sorted(records) == ids
    assert all(len(r["embedding"]) == 4 and r["error"] is None for r in records.values())
    sent_again = [text for r in embedding_calls(vertex_emulator) for text in texts_of(r)]
    assert sorted(sent_again) == sorted(f"text {i}" for i in set(ids) - done_before)


def read_output_prefix(path: Path) -> list[str]:
    """The ids of the whole lines of an output file that may end in a torn line."""
    whole = path.read_bytes().rsplit(b"\n", 1)[0] + b"\n"
    trimmed = path.with_name("whole.jsonl")
    trimmed.write_bytes(whole)
    return [str(line_id) for line_id in read_output(trimmed)]


def test_lines_are_grouped_by_settings_as_they_stream() -> None:
    parse = embed_line_parser(None)

    def line(number: int, title: str | None = None) -> PromptLine:
        data: dict[str, object] = {"id": number, "text": f"t{number}"}
        if title is not None:
            data.update(task_type="RETRIEVAL_DOCUMENT", title=title)
        parsed, problems = parse(number, json.dumps(data))
        assert parsed is not None, problems
        return parsed

    lines = [line(0), line(1, "a"), line(2), line(3), line(4, "b"), line(5, "a"), line(6)]
    groups = [[item.id for item in group] for group in group_lines(lines, size=3, max_held=10)]
    assert groups == [[0, 2, 3], [1, 5], [4], [6]]
    # Past max_held waiting lines, the oldest group goes out unfilled: memory stays flat.
    many = [line(n, title=f"title {n}") for n in range(50)]
    held = group_lines(many, size=100, max_held=4)
    assert [[item.id for item in group] for group in held][:3] == [[0], [1], [2]]
