"""Without an optional extra, its features fail with one line naming the extra; nothing else does.

Each test runs a fresh interpreter in which the extra's modules cannot be imported (a
``sys.meta_path`` finder refuses them, as if they were not installed). ``make test-no-extras``
(run by ``.ci/run``) does the same in a real virtualenv holding greycloud and its core
dependencies only.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greycloud._extras import EXTRA_MODULES

ROOT = Path(__file__).resolve().parent.parent
ALL_EXTRAS = sorted(set().union(*EXTRA_MODULES.values()))

BLOCKER = """
import sys

class _NotInstalled:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled(sys.argv[1].split(",")))
"""


def run_without(
    modules: list[str], code: str, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``modules`` cannot be imported."""
    program = BLOCKER + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program, ",".join(modules)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_core_imports_with_every_extra_missing() -> None:
    result = run_without(
        ALL_EXTRAS,
        """
        import greycloud
        from greycloud import GreyCloudAsyncClient, GreyCloudClient, VertexRateLimiter
        print("ok")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("missing", ["typer", "rich", "aiohttp"])
def test_the_command_without_the_cli_extra_prints_one_line(missing: str) -> None:
    result = run_without(
        [missing], "import runpy; runpy.run_module('greycloud.cli', run_name='__main__')"
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"greycloud: the command needs the 'cli' extra ({missing} is not installed): "
        "pip install 'greycloud[cli]'"
    ]


def test_the_emulator_without_its_extra_raises_one_line() -> None:
    result = run_without(
        ["aiohttp"],
        """
        try:
            import greycloud.testing
        except ModuleNotFoundError as exc:
            print(exc)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "greycloud.testing needs the 'emulator' extra (aiohttp is not installed): "
        "pip install 'greycloud[emulator]'"
    ]


def test_redis_storage_without_its_extra_says_which_extra() -> None:
    result = run_without(
        ["redis"],
        """
        from greycloud import ConfigError, VertexRateLimiter
        try:
            VertexRateLimiter(storage="redis://127.0.0.1:9/0")
        except ConfigError as exc:
            print(exc)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "needs the 'redis' extra (redis is not installed)" in result.stdout
    assert "pip install 'greycloud[redis]'" in result.stdout


def test_cloud_storage_without_its_extra_says_which_extra() -> None:
    result = run_without(
        ["google.cloud.storage"],
        """
        from greycloud import ConfigError
        from greycloud._gcs import make_client
        try:
            make_client("p", None)
        except ConfigError as exc:
            print(exc)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "storage: Cloud Storage (batch jobs) needs the 'storage' extra (google-cloud-storage is "
        "not installed): pip install 'greycloud[storage]'"
    ]


PLAIN_TEST = "def test_arithmetic():\n    assert 1 + 1 == 2\n"
FIXTURE_TEST = "def test_emulator(vertex_emulator):\n    assert vertex_emulator.url\n"


def run_pytest_without(modules: list[str], project: Path) -> subprocess.CompletedProcess[str]:
    # The plugin loads through its pytest11 entry point, as in any project's environment.
    return run_without(
        modules,
        "import pytest; raise SystemExit(pytest.main(['-q', '-p', 'no:cacheprovider']))",
        cwd=project,
    )


def test_pytest_starts_in_another_project_without_the_emulator_extra(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(PLAIN_TEST)
    result = run_pytest_without(["aiohttp"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_emulator_fixture_without_its_extra_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(PLAIN_TEST)
    (tmp_path / "test_fixture.py").write_text(FIXTURE_TEST)
    result = run_pytest_without(["aiohttp"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert (
        "vertex_emulator: greycloud.testing needs the 'emulator' extra (aiohttp is not "
        "installed): pip install 'greycloud[emulator]'" in result.stdout
    )
    assert "Traceback" not in result.stdout
