"""A real ``redis-server`` for the limiter's Redis tests: one per session, on a free port.

Tests that need it take ``redis_url`` (a URL plus a fresh key prefix per test, so tests never
see each other's quotas). Tests that freeze or kill Redis take ``own_redis``, a server of their
own. Skipped, with the reason, only when the binary is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from greycloud.testing.redis_server import RedisServer as LocalRedis
from greycloud.testing.redis_server import free_port

__all__ = ["RedisServer", "RedisTarget", "free_port", "own_redis", "redis_server", "redis_url"]


class RedisServer(LocalRedis):
    """greycloud's throw-away server, skipping the test when the binary is missing, and able
    to tell how many leases and tickets a quota holds."""

    def __init__(self, *, port: int = 0) -> None:
        try:
            super().__init__(port=port)
        except FileNotFoundError as exc:
            pytest.skip(str(exc))

    def leases(self, prefix: str, model: str) -> int:
        """How many concurrency leases ``model``'s quota under ``prefix`` holds right now."""
        return self._count(prefix, model, "leases")

    def queued(self, prefix: str, model: str) -> int:
        """How many callers hold a ticket in line for a slot of ``model``'s quota right now."""
        return self._count(prefix, model, "queue")

    def _count(self, prefix: str, model: str, key: str) -> int:
        import redis

        from greycloud._limiter import lua

        with redis.Redis(port=self.port, socket_timeout=5) as client:
            return int(client.zcard(getattr(lua.keys(prefix, model), key)))


@dataclass(frozen=True)
class RedisTarget:
    """Where a test's limiter stores its quota: the server's URL and a key prefix of its own."""

    url: str
    prefix: str


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A ``redis-server`` of this test's own, which it may freeze or kill."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> RedisTarget:
    return RedisTarget(redis_server.url, f"test:{uuid.uuid4().hex[:12]}")
