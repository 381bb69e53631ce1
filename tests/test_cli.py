"""End-to-end tests of the ``greycloud`` command against the local emulator.

The kill and interrupt tests run the command as a real process (``python -m greycloud.cli``);
the rest use typer's in-process runner. Each test points the command at the emulator through
the environment (API key, ``GREYCLOUD_ENDPOINT``), the way a user would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.auth
import google.auth.credentials
import google.auth.exceptions
import pytest
from typer.testing import CliRunner

from greycloud.cli import app
from greycloud.testing import Fault, RequestRecord, VertexEmulator
from tests.cli_support import CONFIG_VARIABLES, write_lines

MODEL = "gemini-2.5-flash"
COMMAND = [sys.executable, "-m", "greycloud.cli"]


# -- helpers ---------------------------------------------------------------------------------


def cli_env(emulator: VertexEmulator) -> dict[str, str]:
    """The environment that points the command at ``emulator`` (and nothing else)."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(
        PROJECT_ID=emulator.project,
        LOCATION=emulator.location,
        USE_API_KEY="1",
        GOOGLE_API_KEY=emulator.api_key,
        GREYCLOUD_ENDPOINT=emulator.base_url,
        GREYCLOUD_API_VERSION="v1",
    )
    return env


def question(line_id: str) -> str:
    return f"question {line_id}"


def prompt_of(record: RequestRecord) -> str:
    return str(record.body["contents"][0]["parts"][0]["text"])


def asks(text: str) -> Callable[[RequestRecord], bool]:
    return lambda record: record.body is not None and prompt_of(record) == text


def read_output(path: Path) -> dict[Any, dict[str, Any]]:
    """Output records by id, checking that every line is whole and every id appears once."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "the output ends in a torn line"
    records: dict[Any, dict[str, Any]] = {}
    for line in data.splitlines():
        record = json.loads(line)
        assert record["id"] not in records, f"id {record['id']!r} appears twice"
        records[record["id"]] = record
    return records


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for_lines(path: Path, at_least: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while count_lines(path) < at_least:
        assert process.poll() is None, f"the run ended early: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)


def invoke(emulator: VertexEmulator, *args: str, input: str | None = None) -> Any:
    """Run the command in-process; ``run`` gets a high --rpm unless the test sets one, so the
    limiter's pacing (60 a minute by default) does not slow the test down."""
    arguments = list(args)
    if arguments[:1] == ["run"] and "--rpm" not in arguments:
        arguments += ["--rpm", "100000"]
    return CliRunner().invoke(app, arguments, env=cli_env(emulator), input=input)


@pytest.fixture
def emu(vertex_emulator: VertexEmulator) -> VertexEmulator:
    return vertex_emulator


# -- killed and interrupted runs (real processes) ------------------------------------------------


def test_sigkill_mid_run_then_rerun_leaves_one_line_per_id(
    emu: VertexEmulator, tmp_path: Path
) -> None:
    ids = [f"p{number:03d}" for number in range(200)]
    permanent = {"p003", "p077", "p150", "p198"}
    flaky_503 = {f"p{number:03d}" for number in range(5, 200, 19)}
    flaky_429 = {f"p{number:03d}" for number in range(11, 200, 23)}
    for line_id in permanent:
        emu.inject(
            Fault.status(400, "unsupported prompt"), times=None, match=asks(question(line_id))
        )
    for line_id in flaky_503:
        emu.inject(Fault.status(503), times=1, match=asks(question(line_id)))
    for line_id in flaky_429 - flaky_503:
        emu.inject(Fault.status(429, retry_delay=0.01), times=1, match=asks(question(line_id)))
    emu.latency = 0.05
    prompts = write_lines(tmp_path / "in.jsonl", ({"id": i, "prompt": question(i)} for i in ids))
    output = tmp_path / "out.jsonl"
    command = [*COMMAND, "run", str(prompts), "-o", str(output), "--concurrency", "8"]
    command += ["--rpm", "100000"]

    process = subprocess.Popen(
        command, env=cli_env(emu), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    wait_for_lines(output, 40, process)
    process.kill()
    process.communicate()
    assert 40 <= count_lines(output) < 200, "the kill did not land mid-run"
    with output.open("ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b'{"id":"p1')

    rerun = subprocess.run(command, env=cli_env(emu), capture_output=True, text=True, timeout=60)

    assert rerun.returncode == 1, rerun.stderr  # the permanent errors
    assert "repaired" in rerun.stderr
    records = read_output(output)
    assert sorted(records) == ids
    for line_id in permanent:
        assert records[line_id]["error"]["code"] == 400
        assert records[line_id]["attempts"] == 1
        assert records[line_id]["text"] is None
    for line_id in set(ids) - permanent:
        record = records[line_id]
        assert record["error"] is None, record
        assert record["text"] and record["finish_reason"] == "STOP"
        assert record["usage"]["total_tokens"] > 0
    retried = [records[i]["attempts"] for i in flaky_503 | flaky_429]
    assert max(retried) == 2  # a flaky line was answered on its second attempt


def test_sigint_stops_cleanly_and_a_rerun_finishes(emu: VertexEmulator, tmp_path: Path) -> None:
    ids = [f"q{number:03d}" for number in range(120)]
    emu.latency = 0.1  # ~3 s of work, so a slow machine still stops it mid-run
    prompts = write_lines(tmp_path / "in.jsonl", ({"id": i, "prompt": question(i)} for i in ids))
    output = tmp_path / "out.jsonl"
    command = [*COMMAND, "run", str(prompts), "-o", str(output), "--concurrency", "4"]
    command += ["--rpm", "100000"]

    process = subprocess.Popen(
        command, env=cli_env(emu), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    wait_for_lines(output, 20, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=15)

    assert process.returncode == 130, stderr
    assert "Resume with" in stderr and "greycloud run" in stderr
    done = read_output(output)  # whole lines only
    assert 20 <= len(done) < 120

    rerun = subprocess.run(command, env=cli_env(emu), capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} already answered" in rerun.stderr
    records = read_output(output)
    assert sorted(records) == ids
    assert all(record["error"] is None for record in records.values())
    # Lines saved before the interrupt were not asked again (only those cut off in flight).
    asked = Counter(prompt_of(r) for r in emu.requests())
    assert all(asked[question(line_id)] == 1 for line_id in done)


def test_the_server_never_sees_more_than_rpm(emu: VertexEmulator, tmp_path: Path) -> None:
    rpm = 12
    emu.set_quota(rpm=rpm)  # the emulator refuses (429) anything over the limit
    prompts = write_lines(
        tmp_path / "in.jsonl", ({"id": n, "prompt": question(str(n))} for n in range(30))
    )
    output = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        [*COMMAND, "run", str(prompts), "-o", str(output), "--rpm", str(rpm)],
        env=cli_env(emu),
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_lines(output, 1, process)
    time.sleep(2.0)  # the rest of the minute's budget, if the limiter lets any more through
    process.send_signal(signal.SIGINT)  # also: an interrupt while waiting for the limiter
    _, stderr = process.communicate(timeout=15)

    stats = emu.stats()[MODEL]
    assert process.returncode == 130, stderr
    assert 1 <= stats.accepted <= rpm
    assert stats.peak_rpm <= rpm
    assert stats.rejected == 0
    assert len(read_output(output)) == stats.accepted


# -- input problems --------------------------------------------------------------------------


def test_malformed_input_is_reported_by_line_before_anything_is_sent(
    emu: VertexEmulator, tmp_path: Path
) -> None:
    prompts = write_lines(
        tmp_path / "in.jsonl",
        [
            {"id": 1, "prompt": "fine"},
            "{not json",
            "[1, 2]",
            {"prompt": "no id"},
            {"id": 1, "prompt": "duplicate"},
            {"id": 6},
            {"id": 7, "prompt": "x", "temperature": "hot"},
            {"id": 8, "contents": [{"role": "user", "parts": "not a list"}]},
            {"id": 9, "prompt": "x", "temprature": 0.5},
        ],
    )
    output = tmp_path / "out.jsonl"

    result = invoke(emu, "run", str(prompts), "-o", str(output))

    assert result.exit_code == 2
    for number in range(2, 10):
        assert f"line {number}:" in result.stderr
    assert "line 1:" not in result.stderr
    assert "duplicate id 1 (first on line 1)" in result.stderr
    assert "nothing was sent" in result.stderr
    assert emu.requests() == []
    assert not output.exists()


def test_skip_invalid_runs_the_valid_lines_and_exits_1(emu: VertexEmulator, tmp_path: Path) -> None:
    prompts = write_lines(
        tmp_path / "in.jsonl",
        [{"id": "a", "prompt": "one"}, "oops", {"id": "b", "prompt": "two"}, {"id": "c"}],
    )
    output = tmp_path / "out.jsonl"

    result = invoke(emu, "run", str(prompts), "-o", str(output), "--skip-invalid")

    assert result.exit_code == 1
    assert "line 2:" in result.stderr and "line 4:" in result.stderr
    assert sorted(read_output(output)) == ["a", "b"]


# -- failed lines, resume, settings ------------------------------------------------------------


def test_failed_lines_are_kept_until_retry_failed(emu: VertexEmulator, tmp_path: Path) -> None:
    ids = [f"r{number}" for number in range(6)]
    prompts = write_lines(tmp_path / "in.jsonl", ({"id": i, "prompt": question(i)} for i in ids))
    output = tmp_path / "out.jsonl"
    for line_id in ("r1", "r4"):
        emu.inject(Fault.status(400), times=None, match=asks(question(line_id)))

    first = invoke(emu, "run", str(prompts), "-o", str(output))
    assert first.exit_code == 1
    records = read_output(output)
    assert {i for i, r in records.items() if r["error"]} == {"r1", "r4"}
    assert records["r1"]["error"]["type"] == "ClientError"

    before = output.read_bytes()
    sent = len(emu.requests())
    again = invoke(emu, "run", str(prompts), "-o", str(output))
    assert again.exit_code == 1  # the file still holds failed lines
    assert "2 failed earlier and kept" in again.stderr
    assert output.read_bytes() == before
    assert len(emu.requests()) == sent

    emu.clear_faults()
    retried = invoke(emu, "run", str(prompts), "-o", str(output), "--retry-failed")
    assert retried.exit_code == 0, retried.stderr
    records = read_output(output)
    assert sorted(records) == ids
    assert all(record["error"] is None for record in records.values())
    assert len(emu.requests()) == sent + 2


def test_per_line_settings_override_the_options(emu: VertexEmulator, tmp_path: Path) -> None:
    prompts = write_lines(
        tmp_path / "in.jsonl",
        [
            {"id": "plain", "prompt": "plain"},
            {
                "id": "custom",
                "prompt": "custom",
                "model": "gemini-2.5-pro",
                "system_instruction": "Be brief.",
                "temperature": 0.3,
                "max_output_tokens": 5,
                "stop_sequences": ["END"],
                "metadata": {"batch": 7},
            },
            {"id": "chat", "contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        ],
    )
    output = tmp_path / "out.jsonl"

    result = invoke(
        emu, "run", str(prompts), "-o", str(output), "--system", "Be kind.", "--temperature", "1"
    )

    assert result.exit_code == 0, result.stderr
    bodies = {prompt_of(r): r for r in emu.requests()}
    plain, custom = bodies["plain"], bodies["custom"]
    assert plain.model == MODEL
    assert plain.body["systemInstruction"]["parts"][0]["text"] == "Be kind."
    assert plain.body["generationConfig"]["temperature"] == 1.0
    assert custom.model == "gemini-2.5-pro"
    assert custom.body["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert custom.body["generationConfig"]["temperature"] == 0.3
    assert custom.body["generationConfig"]["stopSequences"] == ["END"]
    records = read_output(output)
    assert records["custom"]["model"] == "gemini-2.5-pro"
    assert records["custom"]["finish_reason"] == "MAX_TOKENS"
    assert records["custom"]["metadata"] == {"batch": 7}
    assert records["chat"]["text"]
    assert "3/3 lines done" in result.stderr


def test_a_daily_quota_stops_the_run_without_failing_lines(
    emu: VertexEmulator, tmp_path: Path
) -> None:
    prompts = write_lines(
        tmp_path / "in.jsonl", ({"id": n, "prompt": question(str(n))} for n in range(5))
    )
    output = tmp_path / "out.jsonl"
    emu.inject(Fault.status(429, quota_id="GenerateRequestsPerDayPerProject"), times=None)

    result = invoke(emu, "run", str(prompts), "-o", str(output), "--concurrency", "1")

    assert result.exit_code == 4  # a per-day quota is exhausted
    assert "stopped early" in result.stderr and "Resume with" not in result.stderr
    assert read_output(output) == {}  # nothing recorded as failed: a later run does them all


def test_plain_progress_lines_when_stderr_is_not_a_terminal(
    emu: VertexEmulator, tmp_path: Path
) -> None:
    emu.latency = 0.01
    prompts = write_lines(
        tmp_path / "in.jsonl", ({"id": n, "prompt": question(str(n))} for n in range(20))
    )
    result = invoke(
        emu,
        "run",
        str(prompts),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--log-interval",
        "0",
        "--concurrency",
        "2",
    )
    assert result.exit_code == 0, result.stderr
    assert "progress: " in result.stderr and "/min" in result.stderr
    assert "20/20 lines done" in result.stderr


def test_an_output_file_that_is_not_ours_is_left_alone(emu: VertexEmulator, tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}])
    output = write_lines(tmp_path / "notes.txt", ["dear diary", "more notes"])
    result = invoke(emu, "run", str(prompts), "-o", str(output))
    assert result.exit_code == 2
    assert "not a greycloud output file" in result.stderr
    assert output.read_text() == "dear diary\nmore notes\n"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "{input}", "-o", "{input}"],
        # --endpoint on the command line (one in the environment gives way to --emulator)
        ["run", "{input}", "-o", "{output}", "--emulator", "--endpoint", "http://127.0.0.1:9"],
        ["run", "{input}", "-o", "{output}", "--rpm", "0"],
        ["run", "{missing}", "-o", "{output}"],
        ["run", "{input}"],
    ],
)
def test_usage_errors_exit_2(emu: VertexEmulator, tmp_path: Path, args: list[str]) -> None:
    paths = {
        "input": str(write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}])),
        "output": str(tmp_path / "out.jsonl"),
        "missing": str(tmp_path / "missing.jsonl"),
    }
    result = invoke(emu, *(arg.format(**paths) for arg in args))
    assert result.exit_code == 2, result.output
    assert emu.requests() == []


# -- generate, count-tokens, help -------------------------------------------------------------


def test_generate_streams_the_answer(emu: VertexEmulator) -> None:
    emu.set_response_text("a streamed answer in several small pieces of text")
    result = invoke(emu, "generate", "Say something", "--system", "Be terse.")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "a streamed answer in several small pieces of text\n"
    (record,) = emu.requests()
    assert ":streamGenerateContent" in record.path
    assert record.body["systemInstruction"]["parts"][0]["text"] == "Be terse."


def test_generate_reads_stdin_and_retries(emu: VertexEmulator) -> None:
    emu.set_response_text("from stdin")
    emu.inject(Fault.status(503), times=1)
    result = invoke(emu, "generate", "-", input="the prompt\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "from stdin\n"
    assert [prompt_of(r) for r in emu.requests()] == ["the prompt\n"] * 2


def test_generate_reports_a_permanent_error(emu: VertexEmulator) -> None:
    emu.inject(Fault.status(403, "no access"), times=1)
    result = invoke(emu, "generate", "hello")
    assert result.exit_code == 1
    assert "no access" in result.stderr


def test_count_tokens(emu: VertexEmulator) -> None:
    result = invoke(emu, "count-tokens", "twelve chars")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_an_unreachable_service_is_a_message_not_a_traceback(emu: VertexEmulator) -> None:
    env = cli_env(emu) | {"GREYCLOUD_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there
    result = CliRunner().invoke(app, ["count-tokens", "hello"], env=env)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("greycloud: ") and "Traceback" not in result.output


class RevokedCredentials(google.auth.credentials.Credentials):
    """Application default credentials whose refresh fails, as after a revoked login."""

    def refresh(self, request: Any) -> None:
        raise google.auth.exceptions.RefreshError("invalid_grant: Token has been revoked.")


@pytest.fixture
def revoked_adc(emu: VertexEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """The environment of a user whose application default credentials were revoked."""
    monkeypatch.setattr(google.auth, "default", lambda **_: (RevokedCredentials(), emu.project))
    return {**cli_env(emu), "USE_API_KEY": None, "GOOGLE_API_KEY": None}


def test_credentials_that_cannot_refresh_say_how_to_log_in(
    emu: VertexEmulator, revoked_adc: dict[str, str | None]
) -> None:
    result = CliRunner().invoke(app, ["generate", "hello"], env=revoked_adc)
    assert result.exit_code == 3, result.output  # credentials, as in every command
    assert "Token has been revoked" in result.stderr
    assert "gcloud auth application-default login" in result.stderr


def test_credentials_that_cannot_refresh_stop_the_run_without_failing_lines(
    emu: VertexEmulator, revoked_adc: dict[str, str | None], tmp_path: Path
) -> None:
    prompts = write_lines(
        tmp_path / "in.jsonl", ({"id": n, "prompt": question(str(n))} for n in range(5))
    )
    output = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app, ["run", str(prompts), "-o", str(output), "--concurrency", "1"], env=revoked_adc
    )
    assert result.exit_code == 3, result.output  # credentials, as in every command
    assert "stopped early" in result.stderr
    assert "gcloud auth application-default login" in result.stderr
    assert read_output(output) == {}  # nothing kept as failed: the next run does them all


def test_emulator_command_on_a_taken_port_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["emulator", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"could not listen on 127.0.0.1:{port}" in result.stderr
    assert "choose another port" in result.stderr


def test_embedded_emulator_needs_no_configuration(tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}])
    env = {name: None for name in CONFIG_VARIABLES}
    runner = CliRunner()
    result = runner.invoke(
        app, ["run", str(prompts), "-o", str(tmp_path / "o"), "--emulator"], env=env
    )
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(app, ["generate", "hi", "--emulator"], env=env)
    assert result.exit_code == 0 and result.stdout.strip()


@pytest.mark.parametrize(
    "command", [[], ["run"], ["embed"], ["generate"], ["count-tokens"], ["emulator"]]
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: greycloud" in result.stdout


def test_emulator_command_serves(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*COMMAND, "emulator", "--port", "0", "--rpm", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    while "Ctrl-C" not in process.stdout.readline():
        pass
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert "emulator listening on http://127.0.0.1:" in first and "rpm=5" in first
    assert process.returncode == 0


def test_emulator_command_with_a_capacity_refuses_what_its_pool_cannot_serve() -> None:
    """``--capacity 2``: a pool of 2 requests a second (1 s of burst), so of 8 requests sent
    at once the excess gets Vertex's 429 RESOURCE_EXHAUSTED."""
    process = subprocess.Popen(
        [*COMMAND, "emulator", "--port", "0", "--capacity", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "capacity=2 requests/s per model" in first
        base_url = first.split("listening on ")[1].split()[0]
        statuses = []
        for _ in range(8):
            request = urllib.request.Request(
                f"{base_url}/v1/projects/p/locations/l/publishers/google/models/m:generateContent",
                data=b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}',
                headers={"Authorization": "Bearer any", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as refused:
                statuses.append(refused.code)
                assert b"RESOURCE_EXHAUSTED" in refused.read()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert 2 <= statuses.count(200) <= 4 and statuses.count(429) == 8 - statuses.count(200)
