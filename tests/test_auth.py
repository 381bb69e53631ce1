"""Finding credentials: ADC, impersonation, the gcloud fallback and the errors that fix things.

No test here reaches the network: ADC comes from files written by the test, the metadata server
is pointed at a closed loopback port (tests/conftest.py), and gcloud is replaced on PATH.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import google.auth.credentials
import google.auth.impersonated_credentials
import google.oauth2.credentials
import pytest

from greycloud import AuthError, GreyCloudClient, GreyCloudConfig
from greycloud.auth import LOGIN_COMMAND, GcloudCredentials, find_credentials, refresh_credentials
from greycloud.testing import Fault, VertexEmulator
from tests.cli_support import logged_out_gcloud


@pytest.fixture
def no_adc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No application default credentials anywhere, and an empty PATH directory to fill."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud-config"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def fake_gcloud(bin_dir: Path, token: str, exit_code: int = 0) -> None:
    script = bin_dir / "gcloud"
    script.write_text(f"#!/bin/sh\necho {token}\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def write_adc(path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "id.apps.googleusercontent.com",
                "client_secret": "secret",
                "refresh_token": "refresh",
            }
        )
    )


def test_application_default_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_adc(tmp_path / "adc.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "adc.json"))
    credentials = find_credentials(GreyCloudConfig(project_id="p"))
    assert isinstance(credentials, google.oauth2.credentials.Credentials)
    assert credentials.refresh_token == "refresh"


def test_service_account_impersonation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_adc(tmp_path / "adc.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "adc.json"))
    config = GreyCloudConfig(project_id="p", sa_email="robot@p.iam.gserviceaccount.com")
    credentials = find_credentials(config)
    assert isinstance(credentials, google.auth.impersonated_credentials.Credentials)
    assert credentials.service_account_email == "robot@p.iam.gserviceaccount.com"


def test_api_key_needs_no_credentials() -> None:
    assert find_credentials(GreyCloudConfig(use_api_key=True, api_key="k")) is None


def test_gcloud_token_when_there_is_no_adc(no_adc: Path) -> None:
    fake_gcloud(no_adc, "token-from-gcloud")
    credentials = find_credentials(GreyCloudConfig(project_id="p"))
    assert isinstance(credentials, GcloudCredentials)
    credentials.refresh(None)
    assert credentials.token == "token-from-gcloud"


def test_no_credentials_at_all_names_the_fix(no_adc: Path) -> None:
    with pytest.raises(AuthError) as caught:
        find_credentials(GreyCloudConfig(project_id="p"))
    assert caught.value.fix_command == LOGIN_COMMAND
    assert LOGIN_COMMAND in str(caught.value)


class _Unrefreshable(google.auth.credentials.Credentials):  # type: ignore[misc]
    def refresh(self, request: object) -> None:
        raise google.auth.exceptions.RefreshError("refresh token revoked")


def test_failed_refresh_without_a_terminal_names_the_fix(no_adc: Path) -> None:
    fake_gcloud(no_adc, "unused")
    config = GreyCloudConfig(project_id="p", auto_reauth=True)  # but stdin is not a terminal
    with pytest.raises(AuthError, match="refresh token revoked") as caught:
        refresh_credentials(_Unrefreshable(), config)
    assert caught.value.fix_command == LOGIN_COMMAND


def test_gcloud_failure_is_a_refresh_error(no_adc: Path) -> None:
    fake_gcloud(no_adc, "", exit_code=1)
    with pytest.raises(google.auth.exceptions.RefreshError):
        GcloudCredentials().refresh(None)


def test_a_logged_out_gcloud_means_no_usable_credentials_with_gcloud_s_reason(
    no_adc: Path, vertex_emulator: VertexEmulator
) -> None:
    logged_out_gcloud(no_adc)
    config = vertex_emulator.config()
    with GreyCloudClient(config) as client, pytest.raises(AuthError) as caught:
        client.generate_content("hello")
    message = str(caught.value)
    assert message.startswith("no usable credentials were found: ")
    assert "rejected" not in message  # nothing was: the token never existed
    assert "You do not currently have an active account selected" in message
    assert ".." not in message
    assert message.endswith(f". Run: {LOGIN_COMMAND}")
    assert vertex_emulator.requests() == []  # nothing reached the service


def test_no_credentials_at_all_says_none_were_found(no_adc: Path) -> None:
    with pytest.raises(AuthError) as caught:
        find_credentials(GreyCloudConfig(project_id="p"))
    assert str(caught.value).startswith("no usable credentials were found: ")
    assert ".." not in str(caught.value)


def test_credentials_the_server_rejects_after_a_refresh_say_rejected(
    vertex_emulator: VertexEmulator,
) -> None:
    vertex_emulator.inject(
        Fault.status(401, "Request had invalid authentication credentials."), times=2
    )
    config = vertex_emulator.config()
    with (
        GreyCloudClient(config, credentials=vertex_emulator.credentials) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.generate_content("hello")
    assert "rejected after a refresh" in str(caught.value)
    assert "no usable credentials" not in str(caught.value)


def test_an_access_token_from_the_environment_is_used_as_it_is(
    monkeypatch: pytest.MonkeyPatch, vertex_emulator: VertexEmulator
) -> None:
    monkeypatch.setenv("GREYCLOUD_ACCESS_TOKEN", vertex_emulator.token)
    config = vertex_emulator.config()
    assert vertex_emulator.token not in repr(config)
    with GreyCloudClient(config) as client:
        assert client.generate_content("hello").text
    vertex_emulator.expire_token()
    with GreyCloudClient(config) as client, pytest.raises(AuthError) as caught:
        client.generate_content("hello")
    assert "GREYCLOUD_ACCESS_TOKEN" in str(caught.value)
    assert vertex_emulator.token not in str(caught.value)
