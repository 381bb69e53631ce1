"""Finding and refreshing credentials for Vertex AI.

Order: credentials passed by the caller; an API key when the config asks for one; a ready
access token (``GREYCLOUD_ACCESS_TOKEN``); application default credentials (impersonating
``sa_email`` when set); and, when no ADC is configured, the token of the gcloud CLI
(``gcloud auth print-access-token``). Everything here blocks (files, subprocesses, token
endpoints): the async client runs it off the event loop.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from typing import Any

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.impersonated_credentials
import google.auth.transport.requests
import google.oauth2.credentials

from .config import GreyCloudConfig
from .errors import AuthError

logger = logging.getLogger("greycloud.auth")

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
LOGIN_COMMAND = "gcloud auth application-default login"

Credentials = google.auth.credentials.Credentials


class GcloudCredentials(Credentials):
    """An access token from the gcloud CLI, fetched again on every refresh."""

    def __init__(self, sa_email: str | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._sa_email = sa_email

    def refresh(self, request: Any) -> None:
        command = ["gcloud", "auth", "print-access-token"]
        if self._sa_email:
            command.append(f"--impersonate-service-account={self._sa_email}")
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.CalledProcessError as exc:
            # gcloud's own words say what is wrong (logged out, no account selected, ...).
            reason = _one_line(exc.stderr) or f"exit status {exc.returncode}"
            raise google.auth.exceptions.RefreshError(  # type: ignore[no-untyped-call]
                f"gcloud auth print-access-token failed: {reason}"
            ) from None
        except (OSError, subprocess.SubprocessError) as exc:
            raise google.auth.exceptions.RefreshError(  # type: ignore[no-untyped-call]
                f"gcloud auth print-access-token failed: {exc}"
            ) from None
        self.token = result.stdout.strip()


def _one_line(text: str | None, limit: int = 300) -> str:
    """Tool output as one line without a final period (it goes inside a sentence)."""
    line = " ".join((text or "").split())
    return line[:limit].rstrip(". ")


def no_credentials(reason: str) -> AuthError:
    """The error for credentials that never produced a token: nothing was rejected."""
    return AuthError(
        f"no usable credentials were found: {_one_line(reason)}", fix_command=LOGIN_COMMAND
    )


def find_credentials(config: GreyCloudConfig) -> Credentials | None:
    """The credentials the config asks for; None when an API key is used instead."""
    if config.use_api_key:
        return None
    if config.access_token is not None:
        return google.oauth2.credentials.Credentials(token=config.access_token)  # type: ignore[no-untyped-call]
    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError:
        if shutil.which("gcloud") is None:
            raise no_credentials(
                "application default credentials are not set up and the gcloud CLI is not installed"
            ) from None
        logger.info("no application default credentials; using the gcloud CLI's token")
        return GcloudCredentials(config.sa_email)
    if config.sa_email:
        return google.auth.impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
            source_credentials=credentials,
            target_principal=config.sa_email,
            target_scopes=SCOPES,
        )
    return credentials


def refresh_credentials(
    credentials: Credentials, config: GreyCloudConfig, rejected: bool = True
) -> Credentials:
    """Refresh ``credentials``; the credentials to use next.

    ``rejected``: the server refused their token (a 401), rather than the credentials never
    producing one. When the refresh itself fails, an interactive ``gcloud auth
    application-default login`` is started only if ``auto_reauth`` allows it and a person is at
    the terminal; otherwise an ``AuthError`` says what happened and which command fixes it.
    """
    try:
        credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
        return credentials
    except google.auth.exceptions.GoogleAuthError as exc:
        reason = str(exc)
    if config.auto_reauth and sys.stdin.isatty() and shutil.which("gcloud"):
        logger.warning(
            "credentials could not be refreshed (%s); starting %s", reason, LOGIN_COMMAND
        )
        subprocess.run(LOGIN_COMMAND.split(), check=False)
        return find_credentials(config) or credentials
    if config.access_token is not None and credentials.token == config.access_token:
        raise AuthError(
            "the access token from GREYCLOUD_ACCESS_TOKEN (access_token) was rejected and "
            "cannot be refreshed",
            fix_command="export GREYCLOUD_ACCESS_TOKEN=$(gcloud auth print-access-token)",
        )
    if not rejected:
        raise no_credentials(reason)
    raise AuthError(
        f"the credentials were rejected and could not be refreshed: {_one_line(reason)}",
        fix_command=LOGIN_COMMAND,
    )
