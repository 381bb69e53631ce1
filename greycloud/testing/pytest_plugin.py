"""pytest plugin (entry point ``greycloud``): fixtures ``vertex_emulator`` and ``gcs_emulator``.

Imports nothing heavy at import time, so pytest starts even without the ``emulator`` extra;
the emulator is imported when a test first asks for the fixture. One server runs per session
and is ``reset()`` before each test, so every test sees fresh state at no start-up cost.
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
    from greycloud.testing import VertexEmulator

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
    from greycloud.testing.gcs import GcsEmulator

    with GcsEmulator() as emulator:
        yield emulator


@pytest.fixture
def gcs_emulator(gcs_emulator_session: GcsEmulator) -> Iterator[GcsEmulator]:
    """A running ``GcsEmulator`` with no buckets or objects (needs gcp-storage-emulator)."""
    gcs_emulator_session.wipe()
    yield gcs_emulator_session
    gcs_emulator_session.wipe()
