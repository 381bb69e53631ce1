"""Which service a command talks to: the configured one, an explicit endpoint, or an emulator.

The configuration comes from ``GreyCloudConfig`` (so its environment variables apply), with the
command line's options on top. ``--emulator`` starts a ``VertexEmulator`` in this process for
the duration of the command, enforcing the command's rpm/tpm, and uses its offline credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .. import auth
from .._async.client import GreyCloudAsyncClient
from ..config import GreyCloudConfig


@dataclass(frozen=True)
class Target:
    """Where to send requests. ``endpoint``/``api_version`` override the config's."""

    emulator: bool = False
    endpoint: str | None = None
    api_version: str | None = None
    access_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Resolved:
    """A config for a target, and the credentials to use (None: the config decides)."""

    config: GreyCloudConfig
    credentials: auth.Credentials | None = None


@contextmanager
def open_config(target: Target, **overrides: Any) -> Iterator[Resolved]:
    """The config for ``target`` with config fields ``overrides`` (None values are left out).

    Raises ``ConfigError`` for a bad setting, before any request is sent. With ``--emulator``
    the emulator runs until the block ends.
    """
    fields = {name: value for name, value in overrides.items() if value is not None}
    if target.endpoint is not None:
        fields["endpoint"] = target.endpoint
    if target.api_version is not None:
        fields["api_version"] = target.api_version
    if target.access_token is not None and not target.emulator:
        # Asked for on the command line: it wins over an API key in the environment.
        fields.update(access_token=target.access_token, use_api_key=False)
    if not target.emulator:
        yield Resolved(GreyCloudConfig(**fields))
        return
    # Imported here: the emulator needs aiohttp, which only --emulator requires.
    from ..testing import VertexEmulator

    with VertexEmulator() as emulator:
        credentials: auth.Credentials = emulator.credentials
        # Its own credentials, even when the environment asks for an API key.
        config = emulator.config(**{"use_api_key": False, **fields})
        # The emulated service enforces the same quota the client is told, so a run shows
        # whether the limiter keeps it (the summary counts any 429).
        emulator.set_quota(
            rpm=config.rpm if isinstance(config.rpm, int) else None,
            tpm=config.tpm if isinstance(config.tpm, int) else None,
        )
        yield Resolved(config, credentials)


@contextmanager
def open_client(target: Target, **overrides: Any) -> Iterator[GreyCloudAsyncClient]:
    """An async client for ``target`` (see ``open_config``).

    Raises ``ConfigError`` for a bad setting and ``AuthError`` when no credentials are found,
    both before any request is sent. Close the client (``aclose``) inside the block.
    """
    with open_config(target, **overrides) as resolved:
        yield GreyCloudAsyncClient(resolved.config, credentials=resolved.credentials)
