"""``RedisServer``: a throw-away ``redis-server`` on a free port, for trying a shared quota locally.

    from greycloud.testing.redis_server import RedisServer

    with RedisServer() as redis:
        config = GreyCloudConfig(rate_limit_storage=redis.url)   # every process shares one quota

It runs the real server (the limiter's Lua scripts need one, not a fake) as a child process on
127.0.0.1, with no persistence, in a temporary folder removed at ``stop()``. Needs the
``redis-server`` binary on ``PATH`` (e.g. ``apt-get install redis-server``); nothing from PyPI.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType

from ._ports import free_port


class RedisServer:
    """A running ``redis-server`` child process; ``url`` reaches it. Started on creation.

    ``pause()``/``resume()``/``kill()`` freeze, thaw and end it, for testing what the limiter
    does when its store stops answering.
    """

    def __init__(self, *, port: int = 0, start_timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError(
                "redis-server is not on PATH: install it (apt-get install redis-server, or "
                "brew install redis)"
            )
        self._folder = tempfile.TemporaryDirectory(prefix="greycloud-redis-")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", self._folder.name, "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self._process.returncode} at start "
                    f"(is port {self.port} taken?)"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer within {timeout:g} s")

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a frozen server (SIGCONT): it runs what waited in its sockets."""
        self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """End the server at once (SIGKILL): its data is gone, its port free."""
        self._process.kill()
        self._process.wait()

    def stop(self) -> None:
        """End the server (a frozen one too) and remove its folder."""
        if self.running:
            self.resume()
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._folder.cleanup()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
