"""Every fenced block of README.md, run as it is written.

Python blocks run in a subprocess; console blocks (``console``: the ``$`` lines, ``sh``: every
line) run in bash with ``set -e``; ``json`` blocks are checked as ``greycloud run`` input (or
``greycloud embed`` input, when a line has a top-level ``text``);
``text`` blocks are not code. The text of a block is never changed: a block is pointed at
emulators by the environment only, the same for every block:

- a Vertex AI emulator: ``GREYCLOUD_ENDPOINT``, ``GREYCLOUD_API_VERSION``,
  ``GREYCLOUD_ACCESS_TOKEN``, ``GREYCLOUD_SEARCH_ENDPOINT``, ``PROJECT_ID``, ``LOCATION``;
- a Cloud Storage emulator with a bucket ``my-bucket``: ``STORAGE_EMULATOR_HOST``,
  ``BATCH_GCS_BUCKET`` (and ``BATCH_POLL_INTERVAL``, so a wait for a job takes a moment);
- a real ``redis-server`` for blocks that name ``REDIS_URL``: ``REDIS_URL``.

The working directory holds ``prompts.jsonl`` and ``examples/prompts.jsonl`` (the first lines
of the example prompts), ``examples/texts.jsonl`` (texts to embed) and ``requests.jsonl``
(batch input). Blocks that define ``test_*``
functions run under pytest, with greycloud's pytest plugin. A block that cannot run in a test
carries a visible marker on the line before it, ``<!-- readme-test: skip: REASON -->``, and
shows up here as skipped with that reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from greycloud._cli.embed import embed_line_parser
from greycloud._cli.jsonl_input import scan
from greycloud._cli.prompts import line_id
from greycloud.testing import VertexEmulator
from greycloud.testing.gcs import GcsEmulator
from tests.cli_support import CONFIG_VARIABLES, read_prompts
from tests.redis_fixture import RedisServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BUCKET = "my-bucket"
TIMEOUT = 180  # seconds per block; a block that hangs fails
SKIP_MARKER = re.compile(r"^<!--\s*readme-test:\s*skip:\s*(?P<reason>\S.*?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
RUNNABLE = ("python", "console", "sh", "json", "text")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, from 1
    lang: str
    text: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"README.md:{self.line}-{self.lang or 'unlabelled'}"


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise AssertionError(f"README.md:{start + 1}: a fenced block is never closed")
        blocks.append(
            Block(start + 1, match["lang"], "\n".join(body) + "\n", _skip_reason(lines, start))
        )
        index += 1
    return blocks


def _skip_reason(lines: list[str], fence: int) -> str | None:
    before = fence - 1
    while before >= 0 and not lines[before].strip():
        before -= 1
    if before < 0:
        return None
    marker = SKIP_MARKER.match(lines[before].strip())
    return marker["reason"] if marker else None


def console_script(block: Block) -> str:
    """The commands of a console block (its ``$`` lines; every line of an ``sh`` block)."""
    commands: list[str] = []
    continued = False
    for line in block.text.splitlines():
        if continued or (block.lang == "sh" and line.strip()):
            commands.append(line)
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continued = line.endswith("\\")
    return "\n".join(commands) + "\n"


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


# -- the environment every block runs in ---------------------------------------------------------


@dataclass
class Services:
    vertex: VertexEmulator
    gcs: GcsEmulator
    redis: RedisServer | None
    base_env: dict[str, str]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with VertexEmulator(batch_step=0.05) as vertex, GcsEmulator() as gcs:
        vertex.gcs_endpoint = gcs.endpoint
        redis = None
        if any("REDIS_URL" in block.text for block in BLOCKS) and shutil.which("redis-server"):
            redis = RedisServer()
        env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
        env.update(
            PROJECT_ID=vertex.project,
            LOCATION=vertex.location,
            GREYCLOUD_ENDPOINT=vertex.base_url,
            GREYCLOUD_API_VERSION="v1",
            GREYCLOUD_ACCESS_TOKEN=vertex.token,
            GREYCLOUD_SEARCH_ENDPOINT=vertex.base_url,
            STORAGE_EMULATOR_HOST=gcs.endpoint,
            BATCH_GCS_BUCKET=BUCKET,
            BATCH_POLL_INTERVAL="0.2",
            PYTHONUNBUFFERED="1",
            # The block's own directory is not the checkout: greycloud comes from the venv.
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        if redis is not None:
            env["REDIS_URL"] = redis.url
        try:
            yield Services(vertex, gcs, redis, env)
        finally:
            if redis is not None:
                redis.stop()


@pytest.fixture
def workdir(services: Services, tmp_path: Path) -> Path:
    """A fresh directory with the input files the blocks name, and fresh emulators."""
    services.vertex.reset()
    services.vertex.gcs_endpoint = services.gcs.endpoint
    services.vertex.batch_step = 0.05
    services.gcs.wipe()
    services.gcs.create_bucket(BUCKET)
    (tmp_path / "examples").mkdir()
    # The example prompts, cut short: a block's run takes seconds, not the minute of 40 lines.
    examples = (ROOT / "examples" / "prompts.jsonl").read_text(encoding="utf-8").splitlines()
    for target in (tmp_path / "examples" / "prompts.jsonl", tmp_path / "prompts.jsonl"):
        target.write_text("".join(line + "\n" for line in examples[:3]), encoding="utf-8")
    shutil.copy(ROOT / "examples" / "texts.jsonl", tmp_path / "examples" / "texts.jsonl")
    requests = [
        {"key": "q1", "request": {"contents": [{"role": "user", "parts": [{"text": "Hi."}]}]}},
        {"contents": [{"role": "user", "parts": [{"text": "Name a river."}]}]},
    ]
    (tmp_path / "requests.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in requests), encoding="utf-8"
    )
    return tmp_path


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"still running after {TIMEOUT}s:\n{exc.stderr}") from None
    assert result.returncode == 0, (
        f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


# -- the tests -----------------------------------------------------------------------------------


def test_the_readme_has_blocks_of_every_kind() -> None:
    assert {"python", "console", "json"} <= {block.lang for block in BLOCKS}
    unlabelled = [block.id for block in BLOCKS if block.lang not in RUNNABLE]
    assert not unlabelled, f"label these blocks with one of {RUNNABLE}: {unlabelled}"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_readme_block(block: Block, services: Services, workdir: Path) -> None:
    if block.skip_reason is not None:
        pytest.skip(block.skip_reason)
    if block.lang == "text":
        return
    if block.lang == "json":
        path = workdir / "block.jsonl"
        path.write_text(block.text, encoding="utf-8")
        lines = [json.loads(line) for line in block.text.splitlines() if line.strip()]
        if any("text" in line for line in lines):
            checked = scan(path, embed_line_parser(None), line_id)
            assert not checked.problems, [str(problem) for problem in checked.problems]
            assert checked.valid_lines
            return
        prompts = read_prompts(path)
        assert not prompts.problems, [str(problem) for problem in prompts.problems]
        assert prompts.lines
        return
    env = dict(services.base_env)
    if "REDIS_URL" in block.text and "REDIS_URL" not in env:
        pytest.fail("this block needs redis-server, which is not installed")
    if block.lang == "python":
        script = workdir / "readme_block.py"
        if re.search(r"^def test_\w+\(", block.text, re.MULTILINE):
            script = workdir / "test_readme_block.py"
            script.write_text(block.text, encoding="utf-8")
            _run(
                # async def test_... blocks run as in this project (pytest-asyncio, auto mode)
                [
                    *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
                    *("-o", "asyncio_mode=auto", script.name),
                ],
                workdir,
                env,
            )
            return
        script.write_text(block.text, encoding="utf-8")
        _run([sys.executable, script.name], workdir, env)
        return
    script = console_script(block)
    assert script.strip(), "a console block without commands ($ lines)"
    _run(["bash", "-e", "-o", "pipefail", "-c", script], workdir, env)
