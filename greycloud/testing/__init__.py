"""``greycloud.testing``: a local Vertex AI emulator that the real google-genai SDK talks to.

    from greycloud.testing import VertexEmulator, Fault

    with VertexEmulator(rpm=5) as emu:
        config = emu.config()                     # a GreyCloudConfig pointing at it
        emu.inject(Fault.status(503), times=2)    # the next two requests fail

It serves generateContent, streamGenerateContent, countTokens, the embedding routes
(``:predict``, ``:embedContent``, ``:batchEmbedContents``), cachedContents,
batchPredictionJobs and Vertex AI Search ``:search`` over real HTTP on 127.0.0.1, with quotas,
auth and scripted faults; it can script function calls (``script_function_calls``) and answers
JSON that fits the response schema a request sends. ``EmulatorProcess`` runs one in a process
of its own (for benchmarks and many-process tests).
Needs the ``emulator`` extra (aiohttp); without it, importing this package raises one
``ModuleNotFoundError`` line naming the extra. The pytest fixture ``vertex_emulator`` comes from
``greycloud.pytest_plugin``; ``serve()`` runs one in the foreground.
"""

from __future__ import annotations

from .._extras import missing_extra

try:
    import aiohttp  # noqa: F401  (the server's only dependency beyond the core)
except ImportError as exc:
    raise ModuleNotFoundError(
        missing_extra("greycloud.testing", "emulator", exc.name), name=exc.name
    ) from None

from ._auth import EmulatorCredentials
from ._capacity import Capacity, SecondStats
from ._emulator import VertexEmulator
from ._faults import Fault
from ._process import EmulatorProcess
from ._records import RequestRecord
from ._search import SearchDocument
from ._serve import serve
from ._state import EmulatorStats, ModelStats

__all__ = [
    "Capacity",
    "EmulatorCredentials",
    "EmulatorProcess",
    "EmulatorStats",
    "Fault",
    "ModelStats",
    "RequestRecord",
    "SearchDocument",
    "SecondStats",
    "VertexEmulator",
    "serve",
]
