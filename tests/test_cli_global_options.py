"""The command line's shared surface: global options anywhere, an access token instead of gcloud,
the exports ``greycloud emulator`` prints, one exit code per cause, and help that reads well."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import google.auth
import google.auth.exceptions
import pytest
from typer.testing import CliRunner

from greycloud.cli import app
from greycloud.testing import Fault, VertexEmulator
from greycloud.testing.gcs import GcsEmulator
from tests.cli_support import CONFIG_VARIABLES, logged_out_gcloud, write_lines

BUCKET = "global-options-bucket"
COMMANDS = [
    ["run"],
    ["generate"],
    ["count-tokens"],
    ["emulator"],
    ["cache", "list"],
    ["cache", "delete"],
    ["batch", "submit"],
    ["batch", "status"],
    ["batch", "download"],
    ["batch", "cancel"],
]


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No application default credentials and no gcloud: only what the command is given.

    Returns a directory on PATH to put a fake gcloud in."""

    def no_adc(**_: object) -> None:
        raise google.auth.exceptions.DefaultCredentialsError("no ADC here")

    monkeypatch.setattr(google.auth, "default", no_adc)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def token_env(emulator: VertexEmulator, **extra: str) -> dict[str, str | None]:
    """The emulator's endpoint and project, and no credentials of any kind."""
    env: dict[str, str | None] = {name: None for name in CONFIG_VARIABLES}
    env.update(
        PROJECT_ID=emulator.project,
        LOCATION=emulator.location,
        GREYCLOUD_ENDPOINT=emulator.base_url,
        GREYCLOUD_API_VERSION="v1",
        **extra,
    )
    return env


def invoke(args: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


# -- --access-token and -v, before or after the command ----------------------------------------


@pytest.fixture
def strict(vertex_emulator: VertexEmulator, gcs_emulator: GcsEmulator) -> Iterator[VertexEmulator]:
    """The emulator running batch jobs, accepting only its own tokens."""
    vertex_emulator.gcs_endpoint = gcs_emulator.endpoint
    vertex_emulator.batch_step = 0.05
    gcs_emulator.create_bucket(BUCKET)
    yield vertex_emulator
    vertex_emulator.gcs_endpoint = None


@pytest.mark.parametrize("where", ["before", "after"])
def test_every_command_runs_on_an_access_token_alone(
    strict: VertexEmulator,
    gcs_emulator: GcsEmulator,
    no_credentials: Path,
    tmp_path: Path,
    where: str,
) -> None:
    token = strict.token
    env = token_env(strict, BATCH_GCS_BUCKET=BUCKET, STORAGE_EMULATOR_HOST=gcs_emulator.endpoint)
    prompts = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi"}])
    requests = write_lines(tmp_path / "requests.jsonl", [{"contents": "hi"}])

    def command(*args: str) -> tuple[int, str, str]:
        options = ["--access-token", token, "-v"]
        full = [*options, *args] if where == "before" else [*args, *options]
        code, out, err = invoke(full, env)
        assert token not in out + err  # never logged, not even with -v
        return code, out, err

    assert command("run", str(prompts), "-o", str(tmp_path / "out.jsonl"))[0] == 0
    assert command("generate", "hi")[0] == 0
    assert command("count-tokens", "hi")[0] == 0
    assert command("cache", "list")[0] == 0
    code, job, err = command("batch", "submit", str(requests), "--wait", "--poll-interval", "0.02")
    assert code == 0, err
    assert command("batch", "status", job.strip())[0] == 0
    assert command("batch", "download", job.strip(), "-o", str(tmp_path / "answers.jsonl"))[0] == 0
    code, job, _ = command("batch", "submit", str(requests))
    assert command("batch", "cancel", job.strip())[0] == 0
    # Nothing was sent with any other token.
    assert all(r.status == 200 for r in strict.requests())


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_works_before_and_after_the_command(
    vertex_emulator: VertexEmulator, where: str
) -> None:
    vertex_emulator.inject(Fault.status(503), path=":streamGenerateContent")
    args = ["generate", "hi", "--access-token", vertex_emulator.token]
    code, _, err = invoke(
        ["-v", *args] if where == "before" else [*args, "-v"], token_env(vertex_emulator)
    )
    assert code == 0, err
    assert "retrying in" in err  # the retry, logged at INFO: only with -v


def test_without_verbose_retries_are_not_logged(vertex_emulator: VertexEmulator) -> None:
    vertex_emulator.inject(Fault.status(503), path=":streamGenerateContent")
    code, _, err = invoke(
        ["generate", "hi", "--access-token", vertex_emulator.token], token_env(vertex_emulator)
    )
    assert code == 0, err
    assert "retrying in" not in err


# -- the exports greycloud emulator prints -------------------------------------------------------


def test_the_printed_exports_are_all_a_command_needs(tmp_path: Path) -> None:
    greycloud = [sys.executable, "-m", "greycloud.cli"]
    server = subprocess.Popen(
        [*greycloud, "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = []
        for line in server.stdout:
            banner.append(line)
            if "Press Ctrl-C" in line:
                break
        exports = dict(
            re.findall(
                r"(\w+)=(\S+)",
                " ".join(
                    line.strip().removeprefix("export ")
                    for line in banner
                    if line.strip().startswith("export ")
                ),
            )
        )
        assert {"PROJECT_ID", "GREYCLOUD_ENDPOINT", "GREYCLOUD_ACCESS_TOKEN"} <= set(exports)
        # Exactly those exports, and an environment with no credentials and no gcloud.
        env = {"PATH": os.path.dirname(sys.executable), "HOME": str(tmp_path), **exports}
        for args in (["count-tokens", "hi"], ["generate", "hi"], ["cache", "list"]):
            result = subprocess.run(
                [*greycloud, *args], env=env, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, result.stderr
    finally:
        server.terminate()
        server.wait(10)


# -- one exit code per cause ---------------------------------------------------------------------


@pytest.mark.parametrize("gcloud", ["absent", "logged out"])
@pytest.mark.parametrize("command", ["run", "generate", "count-tokens", "cache"])
def test_missing_credentials_exit_3_whatever_the_command(
    vertex_emulator: VertexEmulator,
    no_credentials: Path,
    tmp_path: Path,
    gcloud: str,
    command: str,
) -> None:
    if gcloud == "logged out":
        logged_out_gcloud(no_credentials)
    prompts = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi"}])
    args = {
        "run": ["run", str(prompts), "-o", str(tmp_path / "out.jsonl")],
        "generate": ["generate", "hi"],
        "count-tokens": ["count-tokens", "hi"],
        "cache": ["cache", "list"],
    }[command]
    code, _, err = invoke(args, token_env(vertex_emulator))
    assert code == 3, err
    assert "no usable credentials were found" in err
    if gcloud == "logged out":
        assert "You do not currently have an active account selected" in err


def test_a_per_day_quota_exits_4(vertex_emulator: VertexEmulator) -> None:
    vertex_emulator.inject(Fault.status(429, quota_id="GenerateRequestsPerDayPerProject"))
    code, _, err = invoke(
        ["count-tokens", "hi", "--access-token", vertex_emulator.token], token_env(vertex_emulator)
    )
    assert code == 4, err


# -- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda c: " ".join(c) or "greycloud")
def test_help_shows_flags_as_flags_and_lists_the_exit_codes(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = result.stdout
    assert "<bool>" not in text
    assert "Exit codes" in text
    for code in ("0", "1", "2", "3", "4", "130"):
        assert re.search(rf"\b{code}\b", text)
    if command:
        assert "--verbose" in text and "-v" in text
    if command and command != ["emulator"]:
        assert "--access-token" in text


def test_help_shows_a_default_for_every_option_that_takes_a_value() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    lines = result.stdout.splitlines()
    for option in ("--model", "--temperature", "--rpm", "--tpm", "--concurrency", "--max-retries"):
        [start] = [n for n, line in enumerate(lines) if f" {option} " in line]
        # The option's row and its continuation lines, up to the next option.
        row = [lines[start]]
        for line in lines[start + 1 :]:
            if re.search(r"│\s+(\*\s+)?--", line):
                break
            row.append(line)
        assert "default" in " ".join(row), row


def test_emulator_is_a_flag_and_an_endpoint_in_the_environment_gives_way(
    vertex_emulator: VertexEmulator,
) -> None:
    env = token_env(vertex_emulator)
    code, out, err = invoke(["count-tokens", "hi", "--emulator"], env)
    assert code == 0, err
    assert out.strip().isdigit()
    assert vertex_emulator.requests() == []  # the command's own emulator answered
    code, _, err = invoke(["count-tokens", "hi", "--emulator", "true"], env)
    assert code == 2
    code, _, err = invoke(
        ["count-tokens", "hi", "--emulator", "--endpoint", vertex_emulator.base_url], env
    )
    assert code == 2 and "not both" in err


def test_a_token_on_the_command_line_wins_over_the_environment(
    vertex_emulator: VertexEmulator, no_credentials: Path
) -> None:
    env = token_env(vertex_emulator, GREYCLOUD_ACCESS_TOKEN="a-token-the-emulator-refuses")
    good = vertex_emulator.token
    assert invoke(["--access-token", good, "count-tokens", "hi"], env)[0] == 0
    assert invoke(["count-tokens", "hi", "--access-token", good], env)[0] == 0
    code, _, err = invoke(["count-tokens", "hi"], env)
    assert code == 3, err  # the environment's token alone: refused, and it cannot be refreshed
    assert "GREYCLOUD_ACCESS_TOKEN" in err
