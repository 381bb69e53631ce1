"""``greycloud run``'s tokens-and-cost summary, ``--pricing`` and ``--otel``: the command in a
subprocess (it sets up OpenTelemetry for its own process) against the emulator."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from greycloud import Pricing
from greycloud.testing import VertexEmulator
from tests.cli_support import write_lines
from tests.test_cli import COMMAND, cli_env

MODEL = "gemini-2.5-flash"


def run_command(
    emulator: VertexEmulator, tmp_path: Path, *options: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    prompts = write_lines(
        tmp_path / "in.jsonl", [{"id": str(n), "prompt": f"question {n}"} for n in range(3)]
    )
    out = tmp_path / "out.jsonl"
    out.unlink(missing_ok=True)
    return subprocess.run(
        [*COMMAND, "run", str(prompts), "-o", str(out), "--rpm", "6000", *options],
        env={**cli_env(emulator), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def spent(tmp_path: Path) -> tuple[int, int]:
    """Input and output tokens, from the results the command wrote."""
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    return (
        sum(line["usage"]["prompt_tokens"] for line in lines),
        sum(line["usage"]["candidates_tokens"] for line in lines),
    )


def cost_in(stderr: str) -> float:
    match = re.search(r"estimated cost \$([0-9.]+)", stderr)
    assert match, stderr
    return float(match.group(1))


def test_the_summary_gives_tokens_by_kind_and_the_estimated_cost(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    result = run_command(vertex_emulator, tmp_path)
    assert result.returncode == 0, result.stderr
    tokens_in, tokens_out = spent(tmp_path)
    assert f"tokens: {tokens_in:,} input (0 cached), {tokens_out:,} output, 0 thinking" in (
        result.stderr
    )
    price = Pricing.load().models[MODEL]
    expected = (tokens_in * price.input + tokens_out * price.output) / 1_000_000
    assert cost_in(result.stderr) == round(expected, 4)


def test_a_pricing_file_changes_the_estimate(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {MODEL: {"input": 1000.0, "output": 0}}}))
    result = run_command(vertex_emulator, tmp_path, "--pricing", str(prices))
    assert result.returncode == 0, result.stderr
    tokens_in, _ = spent(tmp_path)
    assert cost_in(result.stderr) == round(tokens_in * 1000.0 / 1_000_000, 4)


def test_a_bad_pricing_file_stops_the_run_before_any_request(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text("{}")
    result = run_command(vertex_emulator, tmp_path, env={"GREYCLOUD_PRICING": str(prices)})
    assert result.returncode == 2
    assert '"models"' in result.stderr
    assert vertex_emulator.requests() == []


def test_otel_exports_a_span_per_line_and_the_metrics(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    console = {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}
    result = run_command(vertex_emulator, tmp_path, "--otel", env=console)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(f'"name": "generate_content {MODEL}"') == 3
    assert result.stdout.count('"name": "greycloud.attempt"') == 3
    assert '"name": "gen_ai.client.token.usage"' in result.stdout
    assert '"service.name": "greycloud"' in result.stdout


def test_otel_without_an_installed_exporter_says_what_to_install(
    vertex_emulator: VertexEmulator, tmp_path: Path
) -> None:
    result = run_command(
        vertex_emulator, tmp_path, "--otel", env={"OTEL_TRACES_EXPORTER": "no-such-exporter"}
    )
    assert result.returncode == 2
    assert "OTEL_TRACES_EXPORTER=no-such-exporter" in result.stderr
    assert "pip install" in result.stderr
    assert vertex_emulator.requests() == []


def test_embed_exports_with_otel_too(vertex_emulator: VertexEmulator, tmp_path: Path) -> None:
    texts = write_lines(tmp_path / "in.jsonl", [{"id": str(n), "text": f"t {n}"} for n in range(3)])
    console = {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}
    result = subprocess.run(
        [*COMMAND, "embed", str(texts), "-o", str(tmp_path / "out.jsonl"), "--otel"],
        env={**cli_env(vertex_emulator), **console},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "embeddings gemini-embedding-001"' in result.stdout
    assert '"name": "gen_ai.client.token.usage"' in result.stdout
