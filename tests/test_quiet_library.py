"""What a program that uses greycloud sees in its own process: nothing printed from greycloud
when it never set up logging, and nothing imported from opentelemetry without the extra.

Each check runs a real program in a subprocess against the emulator (this process has set up
logging and OpenTelemetry already, so it cannot show either).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from greycloud.testing import Fault, VertexEmulator

# The program: generate_with_retry through the emulator, told where by the environment.
PROGRAM = """
import os, sys
import greycloud
from google.oauth2.credentials import Credentials
config = greycloud.GreyCloudConfig(
    project_id="p", location="l", endpoint=os.environ["ENDPOINT"], api_version="v1"
)
credentials = Credentials(token=os.environ["TOKEN"])
with greycloud.GreyCloudClient(config, credentials=credentials) as client:
    response = client.generate_with_retry("hi", base_delay=0.01, max_delay=0.05)
print(response.text is not None)
print(sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry"))
"""

# Makes opentelemetry impossible to import, as in an install without the otel extra.
WITHOUT_OTEL = """
import sys
class _NoOtel:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoOtel())
"""


def run_program(emulator: VertexEmulator, prelude: str = "") -> subprocess.CompletedProcess[str]:
    source = textwrap.dedent(prelude) + textwrap.dedent(PROGRAM)
    return subprocess.run(
        [sys.executable, "-c", source],
        env={
            "ENDPOINT": emulator.base_url,
            "TOKEN": emulator.token,
            "PATH": "/usr/bin:/bin",
            "NO_GCE_CHECK": "true",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_429_prints_nothing_in_a_program_without_logging(
    vertex_emulator: VertexEmulator,
) -> None:
    vertex_emulator.inject(Fault.status(429, retry_delay=0.1))
    result = run_program(vertex_emulator)
    assert result.returncode == 0, result.stderr
    assert [r.status for r in vertex_emulator.requests()] == [429, 200]
    assert result.stdout.splitlines()[0] == "True"
    assert result.stderr == ""


def test_nothing_from_opentelemetry_is_imported_without_the_extra(
    vertex_emulator: VertexEmulator,
) -> None:
    vertex_emulator.inject(Fault.status(503))
    result = run_program(vertex_emulator, WITHOUT_OTEL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True", "[]"]
    assert result.stderr == ""


def test_with_the_extra_the_api_is_used() -> None:
    # The other side of the check above: with opentelemetry installed, it is imported.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from greycloud import GreyCloudClient; "
            "print('opentelemetry.trace' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "True"
