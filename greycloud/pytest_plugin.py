"""pytest plugin (entry point ``greycloud``): fixtures ``vertex_emulator`` and ``gcs_emulator``.

It lives outside ``greycloud.testing`` and imports nothing optional at import time, so pytest
starts in any environment where greycloud is installed, extras or not. The emulator is imported
when a test first asks for a fixture; without its extra that test errors with one line naming
the extra (an error, not a skip: a test that never runs should not look green). One server runs
per session and is ``reset()`` before each test, so every test sees fresh state at no start-up
cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from greycloud.testing import VertexEmulator
    from greycloud.testing.gcs import GcsEmulator


@pytest.fixture(scope="session")
def vertex_emulator_session() -> Iterator[VertexEmulator]:
    """The session's emulator (shared; prefer ``vertex_emulator``, which resets it)."""
    try:
        from greycloud.testing import VertexEmulator
    except ModuleNotFoundError as exc:
        pytest.fail(f"vertex_emulator: {exc}", pytrace=False)

    with VertexEmulator() as emulator:
        yield emulator


@pytest.fixture
def vertex_emulator(vertex_emulator_session: VertexEmulator) -> Iterator[VertexEmulator]:
    """A running ``VertexEmulator`` with fresh state (no quotas, faults, records or caches)."""
    vertex_emulator_session.reset()
    yield vertex_emulator_session
    vertex_emulator_session.reset()


@pytest.fixture(scope="session")
def gcs_emulator_session() -> Iterator[GcsEmulator]:
    """The session's in-memory Cloud Storage server (prefer ``gcs_emulator``, which wipes it)."""
    try:
        from greycloud.testing.gcs import GcsEmulator

        emulator = GcsEmulator().start()
    except ModuleNotFoundError as exc:
        pytest.fail(f"gcs_emulator: {exc}", pytrace=False)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def gcs_emulator(gcs_emulator_session: GcsEmulator) -> Iterator[GcsEmulator]:
    """A running ``GcsEmulator`` with no buckets or objects (needs gcp-storage-emulator)."""
    gcs_emulator_session.wipe()
    yield gcs_emulator_session
    gcs_emulator_session.wipe()
