"""CI: greycloud installed with no extras must not break anyone (``make test-no-extras``).

In a fresh virtualenv holding only greycloud (from this checkout), its core dependencies and
pytest, beside an unrelated one-test project:
- that project's pytest run passes (greycloud's pytest11 plugin loads without any extra);
- ``import greycloud`` works;
- the ``greycloud`` command, ``import greycloud.testing`` and ``import greycloud.beam`` fail with
  one line naming the extra.
pip's cache is reused, so a warm run takes seconds plus the wheel build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
EXTRAS_BROUGHT = (
    "aiohttp",
    "typer",
    "rich",
    "redis",
    "google.cloud.storage",
    "apache_beam",
    "opentelemetry",
)

FIND_MODULES = """
import importlib, sys
found = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    found.append(name)
print(found)
"""


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def expect(ok: bool, what: str, result: subprocess.CompletedProcess[str] | None = None) -> None:
    if ok:
        print(f"ok: {what}")
        return
    print(f"FAILED: {what}", file=sys.stderr)
    if result is not None:
        print(result.stdout + result.stderr, file=sys.stderr)
    raise SystemExit(1)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="greycloud-no-extras-") as scratch:
        base = Path(scratch)
        env_dir, project = base / "venv", base / "project"
        # Built from a copy: pip builds in the source tree, and a stale build/ there could
        # leak files into later wheels.
        source = base / "greycloud-src"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
        venv.create(env_dir, with_pip=True)
        python = env_dir / "bin" / "python"
        install = run([str(python), "-m", "pip", "install", "--quiet", str(source), "pytest"], base)
        expect(install.returncode == 0, "pip install greycloud (no extras) and pytest", install)

        found = run([str(python), "-c", FIND_MODULES, *EXTRAS_BROUGHT], cwd=base)
        expect(found.stdout.strip() == "[]", "no optional module came with the core", found)

        project.mkdir()
        (project / "test_unrelated.py").write_text("def test_sum():\n    assert 1 + 1 == 2\n")
        tests = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
        expect(
            tests.returncode == 0 and "1 passed" in tests.stdout,
            "an unrelated project's pytest run passes beside greycloud",
            tests,
        )
        # The plugin really was loaded, not skipped: its fixtures are listed.
        fixtures = run(
            [str(python), "-m", "pytest", "--fixtures", "-p", "no:cacheprovider"], project
        )
        expect("vertex_emulator" in fixtures.stdout, "greycloud's pytest plugin loaded", fixtures)

        core = run([str(python), "-c", "import greycloud; print(greycloud.GreyCloudClient)"], base)
        expect(core.returncode == 0, "import greycloud", core)

        command = run([str(env_dir / "bin" / "greycloud"), "--help"], cwd=base)
        expect(
            command.returncode == 2
            and command.stderr.count("\n") == 1
            and "pip install 'greycloud[cli]'" in command.stderr,
            "the greycloud command prints one line naming the cli extra",
            command,
        )

        emulator = run([str(python), "-c", "import greycloud.testing"], cwd=base)
        last = (emulator.stderr.strip().splitlines() or [""])[-1]
        expect(
            emulator.returncode != 0 and "pip install 'greycloud[emulator]'" in last,
            "import greycloud.testing names the emulator extra",
            emulator,
        )

        beam = run([str(python), "-c", "import greycloud.beam"], cwd=base)
        last = (beam.stderr.strip().splitlines() or [""])[-1]
        expect(
            beam.returncode != 0 and "pip install 'greycloud[beam]'" in last,
            "import greycloud.beam names the beam extra",
            beam,
        )


if __name__ == "__main__":
    main()
