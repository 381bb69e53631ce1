"""The generator's freshness check catches every way generated code can go wrong."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COPIED = (
    "tools",
    "_async_src",
    "tests/_async",
    "tests/_sync",
    "greycloud/_async",
    "greycloud/_sync",
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the generator, its sources and its outputs."""
    for name in COPIED:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(tree / "tools" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_fresh_tree_passes(tree: Path) -> None:
    result = check(tree)
    assert result.returncode == 0, result.stderr


def test_stale_output_is_named(tree: Path) -> None:
    source = tree / "_async_src" / "client.py"
    source.write_text(source.read_text() + "\nEXTRA_CONSTANT = 1\n")
    result = check(tree)
    assert result.returncode == 1
    assert "greycloud/_sync/client.py: stale" in result.stderr
    assert "greycloud/_async/client.py: stale" in result.stderr
    assert check(tree).returncode == 0  # the check regenerated in place


def test_hand_edit_is_named(tree: Path) -> None:
    output = tree / "greycloud" / "_sync" / "client.py"
    output.write_text(output.read_text().replace("def close(", "def close_(", 1))
    result = check(tree)
    assert result.returncode == 1
    assert "greycloud/_sync/client.py: hand-edited" in result.stderr


def test_missing_and_extra_outputs_are_named(tree: Path) -> None:
    (tree / "greycloud" / "_sync" / "rate_limiter.py").unlink()
    (tree / "tests" / "_sync" / "test_orphan.py").write_text("x = 1\n")
    result = check(tree)
    assert result.returncode == 1
    assert "greycloud/_sync/rate_limiter.py: missing" in result.stderr
    assert "tests/_sync/test_orphan.py: extra" in result.stderr
    assert not (tree / "tests" / "_sync" / "test_orphan.py").exists()


def test_async_leftovers_fail(tree: Path) -> None:
    source = tree / "_async_src" / "client.py"
    source.write_text(source.read_text() + "\nimport asyncio\n\nSLEEP = asyncio.sleep\n")
    check(tree)  # regenerate
    result = check(tree)
    assert result.returncode == 1
    assert "async leftover" in result.stderr and "asyncio" in result.stderr
