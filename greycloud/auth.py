"""Finding and refreshing credentials for Vertex AI.

Order: credentials passed by the caller; an API key when the config asks for one; application
default credentials (impersonating ``sa_email`` when set); and, when no ADC is configured, the
token of the gcloud CLI (``gcloud auth print-access-token``). Everything here blocks (files,
subprocesses, token endpoints): the async client runs it off the event loop.
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
        except (OSError, subprocess.SubprocessError) as exc:
            raise google.auth.exceptions.RefreshError(  # type: ignore[no-untyped-call]
                f"gcloud auth print-access-token failed: {exc}"
            ) from None
        self.token = result.stdout.strip()


def find_credentials(config: GreyCloudConfig) -> Credentials | None:
    """The credentials the config asks for; None when an API key is used instead."""
    if config.use_api_key:
        return None
    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError:
        if shutil.which("gcloud") is None:
            raise AuthError(
                "no Google Cloud credentials found: application default credentials are not "
                "set up and the gcloud CLI is not installed.",
                fix_command=LOGIN_COMMAND,
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


def refresh_credentials(credentials: Credentials, config: GreyCloudConfig) -> Credentials:
    """Refresh ``credentials`` after the server rejected them; the credentials to use next.

    When the refresh itself fails, an interactive ``gcloud auth application-default login`` is
    started only if ``auto_reauth`` allows it and a person is at the terminal; otherwise an
    ``AuthError`` says which command fixes it.
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
    raise AuthError(
        f"credentials were rejected and could not be refreshed: {reason}.",
        fix_command=LOGIN_COMMAND,
    )
