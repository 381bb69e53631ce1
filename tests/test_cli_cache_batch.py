"""End-to-end tests of ``greycloud cache`` and ``greycloud batch`` against the emulators.

The command runs in-process (typer's runner) and finds its settings in the environment, as a
user's would be: the project, ``GREYCLOUD_ENDPOINT`` for Vertex AI and ``STORAGE_EMULATOR_HOST``
for Cloud Storage. Batch jobs need a project in the URL (no API-key express mode), so the
command authenticates with application default credentials, which here are the emulator's.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth
import pytest
from google.genai import types
from typer.testing import CliRunner, Result

from greycloud import GreyCloudCache, Pricing
from greycloud.cli import app
from greycloud.testing import VertexEmulator
from greycloud.testing.gcs import GcsEmulator
from tests.cli_support import CONFIG_VARIABLES, write_lines

MODEL = "gemini-2.5-flash"
BUCKET = "greycloud-cli-batch"
POLL = ["--poll-interval", "0.02"]


@pytest.fixture
def emu(
    vertex_emulator: VertexEmulator, gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[VertexEmulator]:
    """The emulator, running batch jobs against the Cloud Storage emulator (bucket made)."""

    def emulator_adc(scopes: Any = None, **_: Any) -> tuple[Any, str]:
        return vertex_emulator.credentials, vertex_emulator.project

    monkeypatch.setattr(google.auth, "default", emulator_adc)
    vertex_emulator.gcs_endpoint = gcs_emulator.endpoint
    vertex_emulator.batch_step = 0.05
    gcs_emulator.create_bucket(BUCKET)
    yield vertex_emulator
    vertex_emulator.gcs_endpoint = None


def command_env(emulator: VertexEmulator, gcs: GcsEmulator) -> dict[str, str | None]:
    """The environment of a user whose config points at the emulators (None: unset)."""
    env: dict[str, str | None] = {name: None for name in CONFIG_VARIABLES}
    env.update(
        PROJECT_ID=emulator.project,
        LOCATION=emulator.location,
        GREYCLOUD_ENDPOINT=emulator.base_url,
        GREYCLOUD_API_VERSION="v1",
        BATCH_GCS_BUCKET=BUCKET,
        STORAGE_EMULATOR_HOST=gcs.endpoint,
    )
    return env


def invoke(
    emulator: VertexEmulator, gcs: GcsEmulator, *args: str, input: str | None = None
) -> Result:
    return CliRunner().invoke(app, list(args), env=command_env(emulator, gcs), input=input)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- cache -------------------------------------------------------------------------------------


def make_caches(emulator: VertexEmulator, *display_names: str) -> dict[str, str]:
    """Caches made through the library: display name -> cache name."""
    config = emulator.config()
    with GreyCloudCache(config, credentials=emulator.credentials) as caches:
        made = {
            display_name: caches.create_cache_from_text(
                f"{display_name} " * 3000, display_name=display_name
            ).name
            for display_name in display_names
        }
    return {key: str(name) for key, name in made.items()}


def test_cache_list_and_delete(emu: VertexEmulator, gcs_emulator: GcsEmulator) -> None:
    made = make_caches(emu, "manual-a", "manual-b", "faq")

    listed = invoke(emu, gcs_emulator, "cache", "list")
    assert listed.exit_code == 0, listed.stderr
    rows = {row.split("\t")[0]: row.split("\t") for row in listed.stdout.splitlines()}
    assert set(rows) == set(made.values())
    _, display_name, model, expires, tokens = rows[made["faq"]]
    assert (display_name, model) == ("faq", MODEL)
    assert expires.startswith("20") and int(tokens) > 2048

    as_json = invoke(emu, gcs_emulator, "cache", "list", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    infos = {info["display_name"]: info for info in json.loads(as_json.stdout)}
    assert set(infos) == set(made)
    assert 0 < infos["faq"]["ttl_remaining_seconds"] <= 3600
    assert infos["faq"]["total_token_count"] == int(tokens)

    one = invoke(emu, gcs_emulator, "cache", "delete", made["faq"], "cachedContents/404")
    assert one.exit_code == 1  # the unknown one could not be deleted
    assert "deleted 1 cache(s); 1 not deleted" in one.stderr
    assert "cachedContents/404" in one.stderr

    unconfirmed = invoke(emu, gcs_emulator, "cache", "delete", "--all", "--filter", "-b")
    assert unconfirmed.exit_code == 2  # no terminal to ask, and no --yes
    assert "pass --yes" in unconfirmed.stderr
    filtered = invoke(emu, gcs_emulator, "cache", "delete", "--all", "--filter", "-b", "--yes")
    assert filtered.exit_code == 0, filtered.stderr
    assert "deleted 1 cache(s)" in filtered.stderr
    left = invoke(emu, gcs_emulator, "cache", "list").stdout
    assert [row.split("\t")[1] for row in left.splitlines()] == ["manual-a"]

    rest = invoke(emu, gcs_emulator, "cache", "delete", "--all", "--yes")
    assert rest.exit_code == 0 and "deleted 1 cache(s)" in rest.stderr
    empty = invoke(emu, gcs_emulator, "cache", "list", "--json")
    assert json.loads(empty.stdout) == []


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Standard input on a real pseudo-terminal; what is written to the returned descriptor is
    what the user types."""
    controller, device = os.openpty()
    with os.fdopen(device, "r") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        yield controller
    os.close(controller)


def run_on_terminal(
    emulator: VertexEmulator,
    gcs: GcsEmulator,
    terminal: int,
    typed: str,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str]:
    """Run the command in this process with the user typing ``typed``: (exit code, stderr)."""
    os.write(terminal, typed.encode())
    with pytest.MonkeyPatch.context() as patch:
        for name, value in command_env(emulator, gcs).items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        with pytest.raises(SystemExit) as caught:
            app(list(args), prog_name="greycloud")
    return int(caught.value.code or 0), capsys.readouterr().err


def test_delete_all_asks_on_a_terminal(
    emu: VertexEmulator,
    gcs_emulator: GcsEmulator,
    terminal: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = make_caches(emu, "scratch-1", "scratch-2")
    delete_all = ("cache", "delete", "--all")

    code, stderr = run_on_terminal(emu, gcs_emulator, terminal, "n\n", capsys, *delete_all)
    assert code == 1
    assert "Delete these 2 cache(s)?" in stderr and "nothing was deleted" in stderr
    assert all(name in stderr for name in made.values())

    code, stderr = run_on_terminal(emu, gcs_emulator, terminal, "y\n", capsys, *delete_all)
    assert code == 0 and "deleted 2 cache(s)" in stderr

    make_caches(emu, "scratch-3")
    code, stderr = run_on_terminal(emu, gcs_emulator, terminal, "", capsys, *delete_all, "--yes")
    assert code == 0 and "Delete these" not in stderr
    assert "deleted 1 cache(s)" in stderr


@pytest.mark.parametrize(
    "args",
    [
        ["cache", "delete"],
        ["cache", "delete", "cachedContents/1", "--all"],
        ["cache", "delete", "cachedContents/1", "--filter", "x"],
        ["cache", "list", "--emulator", "--endpoint", "http://127.0.0.1:9"],
        ["batch", "status", "not-a-job"],
    ],
)
def test_usage_errors_exit_2(
    emu: VertexEmulator, gcs_emulator: GcsEmulator, args: list[str]
) -> None:
    result = invoke(emu, gcs_emulator, *args)
    assert result.exit_code == 2, result.output
    assert emu.requests() == []


def test_cache_list_with_the_embedded_emulator() -> None:
    result = CliRunner().invoke(
        app, ["cache", "list", "--emulator"], env={name: None for name in CONFIG_VARIABLES}
    )
    assert result.exit_code == 0, result.stderr
    assert "no context caches" in result.stderr


# -- batch -----------------------------------------------------------------------------------


REQUESTS: list[dict[str, Any] | str] = [
    {"key": "rivers", "request": {"contents": [{"role": "user", "parts": [{"text": "Rivers?"}]}]}},
    {"key": "lakes", "contents": "Name three lakes.", "generationConfig": {"maxOutputTokens": 64}},
    "",
    {"contents": "No key: request-3.", "systemInstruction": "Be brief."},
    {"key": "seas", "request": {"contents": [{"parts": [{"text": "A sea?"}]}]}, "tag": 7},
]
IDS = {"rivers", "lakes", "request-3", "seas"}


def test_submit_status_download_round_trip(
    emu: VertexEmulator, gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    requests = write_lines(tmp_path / "requests.jsonl", REQUESTS)

    submitted = invoke(emu, gcs_emulator, "batch", "submit", str(requests), "--display-name", "t")
    assert submitted.exit_code == 0, submitted.stderr
    job = submitted.stdout.strip()
    assert "/batchPredictionJobs/" in job and "4 request(s)" in submitted.stderr
    (uploaded,) = gcs_emulator.object_names()
    assert uploaded.startswith(f"gs://{BUCKET}/") and uploaded.endswith("/input.jsonl")

    results = tmp_path / "out" / "results.jsonl"
    downloaded = invoke(
        emu, gcs_emulator, "batch", "download", job, "-o", str(results), "--wait", *POLL
    )
    assert downloaded.exit_code == 0, downloaded.stderr
    assert "4 answered, 0 failed" in downloaded.stderr
    lines = read_jsonl(results)
    assert {line["id"] for line in lines} == IDS
    for line in lines:
        assert set(line) == {"id", "model", "text", "finish_reason", "usage", "error"}
        assert line["error"] is None and line["text"] and line["model"] == MODEL
        assert line["finish_reason"] in {"STOP", "MAX_TOKENS"}
        assert line["usage"]["total_tokens"] > 0
    # The tokens, and their cost at batch prices.
    tokens_in = sum(line["usage"]["prompt_tokens"] for line in lines)
    tokens_out = sum(line["usage"]["candidates_tokens"] for line in lines)
    assert f"tokens: {tokens_in:,} input (0 cached), {tokens_out:,} output" in downloaded.stderr
    price = Pricing.load().models[MODEL]
    cost = (tokens_in * (price.batch_input or 0) + tokens_out * (price.batch_output or 0)) / 1e6
    assert f"estimated cost ${cost:,.4f}" in downloaded.stderr

    status = invoke(emu, gcs_emulator, "batch", "status", job, "--json")
    assert status.exit_code == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["name"] == job and info["display_name"] == "t"
    assert info["state"] == "JOB_STATE_SUCCEEDED"
    assert (info["succeeded"], info["failed"]) == (4, 0)
    assert info["input"] == [uploaded]
    assert info["output"].startswith(uploaded.removesuffix("input.jsonl") + "output/")
    text = invoke(emu, gcs_emulator, "batch", "status", job.rsplit("/", 1)[-1])  # by its ID
    assert text.exit_code == 0, text.stderr
    assert "state:        SUCCEEDED" in text.stdout and "4 succeeded, 0 failed" in text.stdout

    raw = tmp_path / "predictions.jsonl"
    predictions = invoke(
        emu, gcs_emulator, "batch", "download", job, "-o", str(raw), "--format", "predictions"
    )
    assert predictions.exit_code == 0, predictions.stderr
    by_key = {line["key"]: line for line in read_jsonl(raw)}
    assert set(by_key) == IDS and by_key["seas"]["tag"] == 7
    assert all(line["status"] == "" and line["response"] for line in by_key.values())


def test_submit_wait_downloads_the_results(
    emu: VertexEmulator, gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    requests = write_lines(tmp_path / "requests.jsonl", REQUESTS)
    results = tmp_path / "results.jsonl"
    prefix = f"gs://{BUCKET}/my/results"

    result = invoke(
        emu,
        gcs_emulator,
        "batch",
        "submit",
        str(requests),
        "--results-prefix",
        prefix,
        "--wait",
        "-o",
        str(results),
        *POLL,
    )

    assert result.exit_code == 0, result.stderr
    assert "RUNNING" in result.stderr and "SUCCEEDED" in result.stderr  # state changes, logged
    assert {line["id"] for line in read_jsonl(results)} == IDS
    assert any(name.startswith(prefix + "/") for name in gcs_emulator.object_names())


def test_bad_lines_are_reported_before_anything_is_uploaded(
    emu: VertexEmulator, gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    requests = write_lines(
        tmp_path / "requests.jsonl",
        [
            {"key": "fine", "contents": "Hi"},
            "{not json",
            {"key": "no-contents", "generationConfig": {"temperature": 0.1}},
            {"key": "fine", "contents": "Again"},
            {"key": "typo", "contents": "Hi", "generation_confg": {}},
            {"key": "bad-config", "contents": "Hi", "generationConfig": {"temperature": "hot"}},
        ],
    )

    result = invoke(emu, gcs_emulator, "batch", "submit", str(requests), "--wait")

    assert result.exit_code == 2
    for number in range(2, 7):
        assert f"line {number}:" in result.stderr
    assert "line 1:" not in result.stderr
    assert "contents is missing" in result.stderr
    assert "'fine' is already used on line 1" in result.stderr
    assert "generation_confg" in result.stderr and "temperature" in result.stderr
    assert "5 invalid line(s)" in result.stderr and "nothing was uploaded" in result.stderr
    assert result.stdout == ""
    assert gcs_emulator.object_names() == []
    assert emu.requests() == []


def test_a_missing_bucket_is_named(
    emu: VertexEmulator, gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    requests = write_lines(tmp_path / "requests.jsonl", REQUESTS)

    missing = invoke(emu, gcs_emulator, "batch", "submit", str(requests), "--bucket", "no-such")
    assert missing.exit_code == 2
    assert "'no-such' does not exist" in missing.stderr
    assert gcs_emulator.object_names() == []

    env_only = CliRunner().invoke(
        app,
        ["batch", "submit", str(requests)],
        env={name: None for name in CONFIG_VARIABLES} | {"PROJECT_ID": "p"},
    )
    assert env_only.exit_code == 2
    assert "--bucket" in env_only.stderr and "BATCH_GCS_BUCKET" in env_only.stderr
    assert emu.requests() == []


def test_an_unfinished_job_has_nothing_to_download_and_can_be_cancelled(
    emu: VertexEmulator, gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    emu.batch_step = 30.0
    requests = write_lines(tmp_path / "requests.jsonl", REQUESTS[:1])
    job = invoke(emu, gcs_emulator, "batch", "submit", str(requests)).stdout.strip()

    early = invoke(emu, gcs_emulator, "batch", "download", job, "-o", str(tmp_path / "r.jsonl"))
    assert early.exit_code == 1
    assert "PENDING and has no results yet" in early.stderr
    assert not (tmp_path / "r.jsonl").exists()

    cancelled = invoke(emu, gcs_emulator, "batch", "cancel", job)
    assert cancelled.exit_code == 0, cancelled.stderr
    state = json.loads(invoke(emu, gcs_emulator, "batch", "status", job, "--json").stdout)
    assert state["state"] in {"JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"}


def test_requests_without_an_answer_are_error_lines(
    emu: VertexEmulator, gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    # Input the command itself would refuse, uploaded and submitted behind its back.
    rows = [
        {"key": "good", "request": {"contents": [{"parts": [{"text": "Hi"}]}]}},
        {"key": "empty", "request": {"contents": []}},
    ]
    blob = gcs_emulator.client().bucket(BUCKET).blob("raw/input.jsonl")
    blob.upload_from_string("".join(json.dumps(row) + "\n" for row in rows))
    sdk = emu.sdk_client()  # kept: the client closes its connection when collected
    job = sdk.batches.create(
        model=MODEL,
        src=f"gs://{BUCKET}/raw/input.jsonl",
        config=types.CreateBatchJobConfig(dest=f"gs://{BUCKET}/raw/out"),
    )
    results = tmp_path / "results.jsonl"

    result = invoke(
        emu, gcs_emulator, "batch", "download", str(job.name), "-o", str(results), "--wait", *POLL
    )

    assert result.exit_code == 1
    assert "1 answered, 1 failed" in result.stderr
    by_id = {line["id"]: line for line in read_jsonl(results)}
    assert by_id["good"]["error"] is None and by_id["good"]["text"]
    assert by_id["empty"]["text"] is None
    assert by_id["empty"]["error"]["type"] == "BatchPredictionError"
    assert "empty contents" in by_id["empty"]["error"]["message"]


@pytest.mark.parametrize(
    "command",
    [
        ["cache"],
        ["cache", "list"],
        ["cache", "delete"],
        ["batch"],
        ["batch", "submit"],
        ["batch", "status"],
        ["batch", "download"],
        ["batch", "cancel"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: greycloud" in result.stdout
