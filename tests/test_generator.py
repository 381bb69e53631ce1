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


def generate(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``make generate`` (or, with ``--check``, ``make check-generated``) in ``tree``."""
    return subprocess.run(
        [sys.executable, str(tree / "tools" / "generate.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def check(tree: Path) -> subprocess.CompletedProcess[str]:
    return generate(tree, "--check")


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


@pytest.mark.parametrize("mode", [(), ("--check",)], ids=["generate", "check"])
def test_a_hand_edit_stops_the_generator_and_is_never_overwritten(
    tree: Path, mode: tuple[str, ...]
) -> None:
    output = tree / "greycloud" / "_sync" / "client.py"
    edited = output.read_text().replace("def close(", "def close_(", 1)
    output.write_text(edited)
    # Its source changes too, so the file is also stale: the hand edit still wins.
    source = tree / "_async_src" / "client.py"
    source.write_text(source.read_text() + "\nEXTRA_CONSTANT = 1\n")
    stale_copy = (tree / "greycloud" / "_async" / "client.py").read_text()

    result = generate(tree, *mode)
    assert result.returncode == 1
    assert (
        "greycloud/_sync/client.py: make the change in _async_src/client.py, then delete "
        "greycloud/_sync/client.py and run make generate" in result.stderr
    )
    assert output.read_text() == edited
    # Nothing at all was written, not even the files that were merely stale.
    assert (tree / "greycloud" / "_async" / "client.py").read_text() == stale_copy

    output.unlink()  # the way out that the message gives
    assert generate(tree).returncode == 0
    assert "EXTRA_CONSTANT = 1" in output.read_text()
    assert check(tree).returncode == 0


def test_missing_and_extra_outputs_are_named(tree: Path) -> None:
    (tree / "greycloud" / "_sync" / "rate_limiter.py").unlink()
    orphan = tree / "tests" / "_sync" / "test_orphan.py"
    orphan.write_text((tree / "tests" / "_sync" / "test_cache.py").read_text())
    result = check(tree)
    assert result.returncode == 1
    assert "greycloud/_sync/rate_limiter.py: missing" in result.stderr
    assert "tests/_sync/test_orphan.py: extra" in result.stderr
    assert not orphan.exists()


def test_a_hand_written_file_among_generated_ones_is_kept(tree: Path) -> None:
    written = tree / "tests" / "_sync" / "test_threads_only.py"
    written.write_text("def test_x() -> None:\n    assert True\n")
    result = generate(tree)
    assert result.returncode == 1
    assert "tests/_sync/test_threads_only.py: it has no source" in result.stderr
    assert written.exists()


def test_a_replacement_that_never_fires_fails_the_run(tree: Path) -> None:
    script = tree / "tools" / "generate.py"
    table_start = "REPLACEMENTS = {\n"
    script.write_text(
        script.read_text().replace(
            table_start, table_start + '    "AsyncNoSuchThing": "SyncNoSuchThing",\n', 1
        )
    )
    before = {path: path.read_text() for path in (tree / "greycloud" / "_sync").glob("*.py")}
    for mode in [(), ("--check",)]:
        result = generate(tree, *mode)
        assert result.returncode == 1
        assert "REPLACEMENTS entries that fire in no source" in result.stderr
        assert result.stderr.strip().endswith("AsyncNoSuchThing")
    assert before == {
        path: path.read_text() for path in (tree / "greycloud" / "_sync").glob("*.py")
    }


def test_every_replacement_is_seen_where_unasync_applies_it() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import generate as generator  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "tools"))
    # A quoted annotation is converted too (unasync rewrites a string that is exactly a name).
    assert generator.unused_replacements(['x: "AsyncLock"\n']) == [
        key for key in generator.REPLACEMENTS if key != "AsyncLock"
    ]
    converted = generator.unasync_texts(
        ["async def f():\n    await async_sleep(1)\n"], {"async_sleep": "sync_sleep"}
    )
    assert converted == ["def f():\n    sync_sleep(1)\n"]


def test_async_leftovers_fail(tree: Path) -> None:
    source = tree / "_async_src" / "client.py"
    source.write_text(source.read_text() + "\nimport asyncio\n\nSLEEP = asyncio.sleep\n")
    check(tree)  # regenerate
    result = check(tree)
    assert result.returncode == 1
    assert "async leftover" in result.stderr and "asyncio" in result.stderr
