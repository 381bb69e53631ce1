"""``greycloud run --rpm auto``: the CLI discovers a shared pool's rate and shows it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from greycloud.cli import app
from greycloud.testing import VertexEmulator
from tests.cli_support import write_lines
from tests.test_cli import cli_env


def test_run_with_rpm_auto_shows_the_discovered_rate(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    vertex_emulator.set_capacity(1000.0)
    prompts = write_lines(tmp_path / "in.jsonl", ({"id": n, "prompt": f"q{n}"} for n in range(4)))
    arguments = ["run", str(prompts), "-o", str(tmp_path / "out.jsonl")]
    result = CliRunner().invoke(
        app,
        [*arguments, "--rpm", "auto", "--tpm", "auto", "--log-interval", "0"],
        env=cli_env(vertex_emulator),
    )
    assert result.exit_code == 0, result.stderr
    assert "4/4 lines done" in result.stderr
    assert "auto rate 60/min" in result.stderr  # the safe start, as the progress line says


def test_a_bad_rpm_is_a_usage_error(vertex_emulator: VertexEmulator, tmp_path: Path) -> None:
    prompts = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}])
    for bad in ("fast", "0", "-5"):
        result = CliRunner().invoke(
            app,
            ["run", str(prompts), "-o", str(tmp_path / "out.jsonl"), "--rpm", bad],
            env=cli_env(vertex_emulator),
        )
        assert result.exit_code == 2
        assert "--rpm must be a positive whole number or auto" in result.stderr
    assert vertex_emulator.requests() == []
