"""GreyCloudConfig: environment variables, defaults, and every bad value failing at construction."""

from __future__ import annotations

from typing import Any

import pytest

from greycloud import ConfigError, GreyCloudConfig
from tests.cli_support import CONFIG_VARIABLES

DATASTORE = "projects/p/locations/global/collections/default_collection/dataStores/docs"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_fields_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCP_PROJECT", "env-project")
    monkeypatch.setenv("GCP_LOCATION", "europe-west4")
    monkeypatch.setenv("SA_EMAIL", "robot@env-project.iam.gserviceaccount.com")
    monkeypatch.setenv("VERTEX_AI_SEARCH_DATASTORE", DATASTORE)
    monkeypatch.setenv("BATCH_GCS_BUCKET", "batch-bucket")
    config = GreyCloudConfig()
    assert config.project_id == "env-project"
    assert config.location == "europe-west4"
    assert config.sa_email == "robot@env-project.iam.gserviceaccount.com"
    assert config.vertex_ai_search_datastore == DATASTORE
    assert config.batch_gcs_bucket == "batch-bucket"
    assert (config.rpm, config.tpm, config.max_concurrency) == (60, 250_000, 10)


def test_primary_environment_names_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECT_ID", "primary")
    monkeypatch.setenv("GCP_PROJECT", "secondary")
    monkeypatch.setenv("LOCATION", "us-east5")
    monkeypatch.setenv("GCP_LOCATION", "europe-west4")
    config = GreyCloudConfig()
    assert (config.project_id, config.location) == ("primary", "us-east5")


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECT_ID", "from-env")
    assert GreyCloudConfig(project_id="from-arg").project_id == "from-arg"


def test_api_key_from_file_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("file-key\n")
    monkeypatch.setenv("USE_API_KEY", "true")
    monkeypatch.setenv("API_KEY_FILE", str(key_file))
    config = GreyCloudConfig()
    assert config.use_api_key and config.resolved_api_key() == "file-key"
    monkeypatch.setenv("GOOGLE_API_KEY", "env-key")
    assert GreyCloudConfig().resolved_api_key() == "env-key"


def test_api_key_file_that_cannot_be_read(tmp_path: Any) -> None:
    config = GreyCloudConfig(use_api_key=True, api_key_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="api_key_file"):
        config.resolved_api_key()


def test_developer_api_uses_the_key() -> None:
    config = GreyCloudConfig(vertexai=False, api_key="k")
    assert config.use_api_key and config.resolved_api_key() == "k"


def test_secrets_never_appear_in_repr() -> None:
    config = GreyCloudConfig(project_id="p", use_api_key=True, api_key="very-secret-key")
    assert "very-secret-key" not in repr(config)
    assert "very-secret-key" not in str(config)


def test_per_model_limits() -> None:
    config = GreyCloudConfig(project_id="p", model_limits={"gemini-2.5-pro": {"rpm": 5}})
    assert config.limits_for("gemini-2.5-pro") == {
        "rpm": 5,
        "tpm": 250_000,
        "max_concurrency": 10,
    }
    assert config.limits_for("gemini-2.5-flash")["rpm"] == 60


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"rpm": 0}, "rpm"),
        ({"tpm": -5}, "tpm"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"rpm": 1.5}, "rpm"),
        ({"thinking_level": "extreme"}, "thinking_level"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 1.1}, "top_p"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"safety_settings": [{"category": "HARM_CATEGORY_HATE_SPEECH"}]}, "safety_settings"),
        ({"safety_settings": [{"threshold": "BLOCK_NONE"}]}, "safety_settings"),
        ({"safety_settings": ["BLOCK_NONE"]}, "safety_settings"),
        ({"vertex_ai_search_datastore": "docs"}, "vertex_ai_search_datastore"),
        ({"use_vertex_ai_search": True}, "vertex_ai_search_datastore"),
        ({"grounding_mode": "magic"}, "grounding_mode"),
        ({"project_id": None}, "project_id"),
        ({"use_api_key": True}, "api_key"),
        ({"model_limits": {"m": {"rpm": 0}}}, "model_limits"),
        ({"model_limits": {"m": {"qps": 1}}}, "model_limits"),
        ({"rate_limit_storage": "localhost:6379"}, "rate_limit_storage"),
        ({"token_counting": "output"}, "token_counting"),
        ({"batch_poll_interval": 0}, "batch_poll_interval"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_values_fail_at_construction(values: dict[str, Any], field: str) -> None:
    arguments = {"project_id": "p", **values}
    with pytest.raises(ConfigError) as caught:
        GreyCloudConfig(**arguments)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}:")


def test_thinking_level_is_case_insensitive() -> None:
    assert GreyCloudConfig(project_id="p", thinking_level="HIGH").thinking_level == "HIGH"


def test_replace_validates_again() -> None:
    config = GreyCloudConfig(project_id="p")
    assert config.replace(rpm=5).rpm == 5
    with pytest.raises(ConfigError, match="rpm"):
        config.replace(rpm=0)


def test_the_endpoint_and_an_access_token_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROJECT_ID", "p")
    monkeypatch.setenv("GREYCLOUD_ENDPOINT", "http://127.0.0.1:8080")
    monkeypatch.setenv("GREYCLOUD_API_VERSION", "v1")
    monkeypatch.setenv("GREYCLOUD_SEARCH_ENDPOINT", "http://127.0.0.1:8081")
    monkeypatch.setenv("GREYCLOUD_ACCESS_TOKEN", "secret-token")
    monkeypatch.setenv("BATCH_POLL_INTERVAL", "2.5")
    config = GreyCloudConfig()
    assert config.endpoint == "http://127.0.0.1:8080"
    assert config.api_version == "v1"
    assert config.search_endpoint == "http://127.0.0.1:8081"
    assert config.access_token == "secret-token"
    assert config.batch_poll_interval == 2.5
    assert "secret-token" not in repr(config)


def test_a_poll_interval_that_is_not_a_number_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCH_POLL_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="BATCH_POLL_INTERVAL") as caught:
        GreyCloudConfig(project_id="p")
    assert caught.value.field == "batch_poll_interval"
