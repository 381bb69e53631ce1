"""A real ``redis-server`` for the limiter's Redis tests: one per session, on a free port.

Tests that need it take ``redis_url`` (a URL plus a fresh key prefix per test, so tests never
see each other's quotas). Tests that freeze or kill Redis take ``own_redis``, a server of their
own. Skipped, with the reason, only when the binary is not installed.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1, with no persistence."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 10 s")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a frozen server (SIGCONT): it runs what waited in its sockets."""
        self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): its data is gone, its port free."""
        self._process.kill()
        self._process.wait()

    def leases(self, prefix: str, model: str) -> int:
        """How many concurrency leases ``model``'s quota under ``prefix`` holds right now."""
        import redis

        from greycloud._limiter import lua

        with redis.Redis(port=self.port, socket_timeout=5) as client:
            return int(client.zcard(lua.keys(prefix, model)[1]))

    def queued(self, prefix: str, model: str) -> int:
        """How many callers hold a ticket in line for a slot of ``model``'s quota right now."""
        import redis

        from greycloud._limiter import lua

        with redis.Redis(port=self.port, socket_timeout=5) as client:
            return int(client.zcard(lua.keys(prefix, model).queue))

    def stop(self) -> None:
        self.resume()
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@dataclass(frozen=True)
class RedisTarget:
    """Where a test's limiter stores its quota: the server's URL and a key prefix of its own."""

    url: str
    prefix: str


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` of this test's own, which it may freeze or kill."""
    server = RedisServer(tmp_path)
    yield server
    if server._process.poll() is None:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> RedisTarget:
    return RedisTarget(redis_server.url, f"test:{uuid.uuid4().hex[:12]}")
