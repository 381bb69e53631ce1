"""``greycloud.testing.redis_server.RedisServer``: the throw-away server users start locally."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from greycloud.testing.redis_server import RedisServer


def test_a_missing_binary_is_one_error_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no redis-server on it
    with pytest.raises(FileNotFoundError, match="apt-get install redis-server"):
        RedisServer()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_the_server_answers_until_stopped_and_leaves_no_folder() -> None:
    with RedisServer() as server:
        folder = Path(server._folder.name)
        with redis.Redis.from_url(server.url, socket_timeout=5) as client:
            client.set("k", "v")
            assert client.get("k") == b"v"
        assert folder.is_dir()
    assert not server.running
    assert not folder.exists()
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(server.url) as client:
        client.ping()
