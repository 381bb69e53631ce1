"""Who may call the emulator: bearer tokens it minted, API keys it issued.

Tokens never expire on their own; a test expires one with ``VertexEmulator.expire_token`` to
play out an access token that died early (the credentials object is not told, just as a
client is not told when a real token is revoked or its clock is off).
"""

from __future__ import annotations

import datetime
import itertools
import secrets
import threading
from typing import Any

from google.auth import credentials as ga_credentials

from ._rpc import error_body, error_info, expired_token_body

_TOKEN_LIFETIME = datetime.timedelta(hours=1)


class TokenStore:
    """The tokens and API keys the emulator accepts, and the ones it has expired."""

    def __init__(self, *, accept_any_token: bool = False) -> None:
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._valid: set[str] = set()
        self._expired: set[str] = set()
        self._api_keys: set[str] = {f"emu-key-{secrets.token_hex(8)}"}
        self.api_key = next(iter(self._api_keys))
        self.accept_any_token = accept_any_token
        self.current = self.mint()

    def mint(self) -> str:
        """A fresh token that is accepted from now on (it becomes the current one)."""
        with self._lock:
            token = f"emu-token-{next(self._serial)}-{secrets.token_hex(6)}"
            self._valid.add(token)
            self.current = token
        return token

    def accept(self, token: str) -> None:
        with self._lock:
            self._expired.discard(token)
            self._valid.add(token)

    def accept_api_key(self, key: str) -> None:
        with self._lock:
            self._api_keys.add(key)

    def expire(self, token: str | None = None) -> str:
        with self._lock:
            token = token or self.current
            self._valid.discard(token)
            self._expired.add(token)
        return token

    def revive(self) -> None:
        """Forget every expiration: tokens expired so far are accepted again."""
        with self._lock:
            self._valid |= self._expired
            self._expired.clear()

    def check(self, authorization: str | None, api_key: str | None) -> dict[str, Any] | None:
        """None when the caller is let in, else the error body to answer with."""
        if api_key is not None:
            if api_key in self._api_keys:
                return None
            return error_body(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[error_info("API_KEY_INVALID")],
            )
        if authorization is None or not authorization.startswith("Bearer "):
            return error_body(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
                details=[error_info("CREDENTIALS_MISSING")],
            )
        token = authorization[7:].strip()
        if token in self._valid:
            return None
        if token in self._expired:
            return expired_token_body()
        if self.accept_any_token and token:
            return None
        return error_body(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            details=[error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED")],
        )


class EmulatorCredentials(ga_credentials.Credentials):
    """google-auth credentials whose ``refresh()`` mints a new emulator token, offline.

    ``refresh_count`` says how often the client refreshed, for tests of token rotation.
    """

    def __init__(self, store: TokenStore) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._store = store
        self.token = store.current
        self.expiry = _utcnow() + _TOKEN_LIFETIME
        self.refresh_count = 0

    def refresh(self, request: Any) -> None:
        self.token = self._store.mint()
        self.expiry = _utcnow() + _TOKEN_LIFETIME
        self.refresh_count += 1


def _utcnow() -> datetime.datetime:
    # google-auth compares expiry against a naive UTC datetime.
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
