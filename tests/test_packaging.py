"""The built wheel carries both halves and imports both clients, with no generator needed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_holds_both_halves_and_imports_both_clients(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("greycloud-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for half in ("_async", "_sync"):
        assert f"greycloud/{half}/client.py" in names
        assert f"greycloud/{half}/rate_limiter.py" in names
    assert "greycloud/py.typed" in names
    assert "greycloud/_core/pricing.json" in names  # the cost estimates' price table
    assert not any(name.startswith(("_async_src/", "tools/", "tests/")) for name in names)

    # Imported from the wheel itself (a zip on the path), not from the source tree; unasync is
    # hidden to show that nothing generates code at run time.
    probe = (
        "import sys; sys.modules['unasync'] = None\n"
        "import greycloud\n"
        "assert greycloud.__file__.startswith(sys.argv[1]), greycloud.__file__\n"
        "print(greycloud.GreyCloudClient.__module__, greycloud.GreyCloudAsyncClient.__module__)\n"
        "assert greycloud.Pricing.load().models\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(wheel)],
        env={**os.environ, "PYTHONPATH": str(wheel)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["greycloud._sync.client", "greycloud._async.client"]


def test_every_public_name_is_exported_lazily_and_resolves() -> None:
    import greycloud

    assert set(greycloud._EXPORTS) == set(greycloud.__all__)
    for name in greycloud.__all__:
        assert getattr(greycloud, name).__name__ == name
    assert set(greycloud.__all__) <= set(dir(greycloud))
