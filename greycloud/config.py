"""``GreyCloudConfig``: the one settings object behind both clients, read from the environment.

Every field can be passed directly; the ones with an environment variable take it as their default
when not passed. Bad values fail here, at construction, with a ``ConfigError`` (a ``ValueError``)
that names the field and the fix, before any request is sent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from google.genai import types

from ._limiter.quota import build_quotas
from .errors import ConfigError

DEFAULT_MODEL = "gemini-2.5-flash"
# Google's recommended embedding model, served by Vertex AI and the Gemini API alike.
DEFAULT_EMBEDDING_MODEL = "gemini-embedding-001"
DEFAULT_LOCATION = "us-central1"

THINKING_LEVELS = ("minimal", "low", "medium", "high")
GROUNDING_MODES = ("inject", "tool")
TOKEN_COUNTING = ("input", "total")
STORAGE_UNAVAILABLE = ("fail", "wait", "local")
MEDIA_TOKEN_ESTIMATES = ("count", "average")

_DATASTORE_PATH = re.compile(r"^projects/[^/]+/locations/[^/]+/collections/[^/]+/dataStores/[^/]+$")
_TRUE = {"1", "true", "yes", "on"}


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _env_seconds(name: str, field_name: str, default: float) -> float:
    value = _env(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(field_name, f"{name}={value!r} is not a number of seconds") from None


def _env_flag(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in _TRUE


@dataclass
class GreyCloudConfig:
    """Settings shared by ``GreyCloudClient`` and ``GreyCloudAsyncClient``.

    Environment variables (used when the field is not passed): ``PROJECT_ID`` or ``GCP_PROJECT``,
    ``LOCATION`` or ``GCP_LOCATION``, ``USE_API_KEY``, ``API_KEY_FILE``, ``GOOGLE_API_KEY`` or
    ``GEMINI_API_KEY`` (the key itself), ``GREYCLOUD_ACCESS_TOKEN`` (an OAuth access token to
    send as it is), ``SA_EMAIL``, ``GREYCLOUD_ENDPOINT``, ``GREYCLOUD_API_VERSION``,
    ``GREYCLOUD_SEARCH_ENDPOINT``, ``VERTEX_AI_SEARCH_DATASTORE``, ``BATCH_GCS_BUCKET``,
    ``BATCH_POLL_INTERVAL``.
    """

    # Where to send requests, and as whom.
    project_id: str | None = field(default_factory=lambda: _env("PROJECT_ID", "GCP_PROJECT"))
    location: str = field(
        default_factory=lambda: _env("LOCATION", "GCP_LOCATION") or DEFAULT_LOCATION
    )
    vertexai: bool = True
    use_api_key: bool = field(default_factory=lambda: _env_flag("USE_API_KEY"))
    api_key: str | None = field(
        default_factory=lambda: _env("GOOGLE_API_KEY", "GEMINI_API_KEY"), repr=False
    )
    api_key_file: str | None = field(default_factory=lambda: _env("API_KEY_FILE"))
    # A ready access token (e.g. an emulator's, or `gcloud auth print-access-token`), used as it
    # is: it cannot be refreshed, so a rejected one is an AuthError.
    access_token: str | None = field(
        default_factory=lambda: _env("GREYCLOUD_ACCESS_TOKEN"), repr=False
    )
    sa_email: str | None = field(default_factory=lambda: _env("SA_EMAIL"))
    auto_reauth: bool = False
    endpoint: str | None = field(default_factory=lambda: _env("GREYCLOUD_ENDPOINT"))
    api_version: str | None = field(default_factory=lambda: _env("GREYCLOUD_API_VERSION"))
    timeout: float | None = 300.0

    # What to generate with.
    model: str = DEFAULT_MODEL
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_output_tokens: int | None = None
    safety_settings: Sequence[types.SafetySetting | Mapping[str, Any]] | None = None
    system_instruction: str | None = None
    thinking_level: str | None = None
    embedding_model: str = DEFAULT_EMBEDDING_MODEL

    # Grounding with Vertex AI Search.
    vertex_ai_search_datastore: str | None = field(
        default_factory=lambda: _env("VERTEX_AI_SEARCH_DATASTORE")
    )
    use_vertex_ai_search: bool = False
    grounding_mode: Literal["inject", "tool"] = "inject"
    # Discovery Engine base URL; None: from the datastore's location.
    search_endpoint: str | None = field(default_factory=lambda: _env("GREYCLOUD_SEARCH_ENDPOINT"))

    # Batch jobs and Cloud Storage.
    batch_gcs_bucket: str | None = field(default_factory=lambda: _env("BATCH_GCS_BUCKET"))
    batch_location: str | None = None
    batch_poll_interval: float = field(
        default_factory=lambda: _env_seconds("BATCH_POLL_INTERVAL", "batch_poll_interval", 30.0)
    )
    gcs_bucket: str | None = None

    # Client-side limits (per model; see model_limits for overrides). rpm="auto" discovers the
    # rate of a shared pool (Vertex AI's Dynamic Shared Quota) within [auto_floor, auto_max].
    rpm: int | Literal["auto"] = 60
    tpm: int | Literal["auto"] = 250_000
    max_concurrency: int = 10
    model_limits: Mapping[str, Mapping[str, int | Literal["auto"]]] | None = None
    auto_max: int | None = None
    auto_floor: int | None = None
    token_counting: Literal["input", "total"] = "input"
    # Media of unknown size (file_data URIs, unknown formats): "count" asks countTokens once per
    # (model, URI, MIME type, resolution); "average" books the learned per-modality average.
    media_token_estimate: Literal["count", "average"] = "count"
    rate_limit_storage: str | None = None
    rate_limit_storage_unavailable: Literal["fail", "wait", "local"] = "fail"

    def __post_init__(self) -> None:
        self._check_limits()
        self._check_generation()
        self._check_grounding()
        self._check_target()

    # -- validation -------------------------------------------------------------------------

    def _check_limits(self) -> None:
        build_quotas(
            self.rpm,
            self.tpm,
            self.max_concurrency,
            self.model_limits,
            auto_max=self.auto_max,
            auto_floor=self.auto_floor,
        )
        _check_choice("token_counting", self.token_counting, TOKEN_COUNTING)
        _check_choice("media_token_estimate", self.media_token_estimate, MEDIA_TOKEN_ESTIMATES)
        _check_choice(
            "rate_limit_storage_unavailable",
            self.rate_limit_storage_unavailable,
            STORAGE_UNAVAILABLE,
        )
        if self.rate_limit_storage is not None and not self.rate_limit_storage.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(
                "rate_limit_storage",
                f"must be a redis:// URL or None (in memory), got {self.rate_limit_storage!r}",
            )

    def _check_generation(self) -> None:
        check_generation_values(
            temperature=self.temperature,
            top_p=self.top_p,
            max_output_tokens=self.max_output_tokens,
            thinking_level=self.thinking_level,
            safety_settings=self.safety_settings,
        )
        if not self.embedding_model:
            raise ConfigError("embedding_model", "must name a model, e.g. gemini-embedding-001")
        if self.batch_poll_interval <= 0:
            raise ConfigError(
                "batch_poll_interval", f"must be positive seconds, got {self.batch_poll_interval}"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError("timeout", f"must be positive seconds or None, got {self.timeout}")

    def _check_grounding(self) -> None:
        _check_choice("grounding_mode", self.grounding_mode, GROUNDING_MODES)
        store = self.vertex_ai_search_datastore
        if store is not None and not _DATASTORE_PATH.match(store):
            raise ConfigError(
                "vertex_ai_search_datastore",
                f"{store!r} is not a datastore path; expected "
                "projects/PROJECT/locations/LOCATION/collections/default_collection/"
                "dataStores/DATASTORE_ID",
            )
        if self.search_endpoint is not None and not self.search_endpoint.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(
                "search_endpoint",
                f"must be an http(s):// base URL or None, got {self.search_endpoint!r}",
            )
        if self.use_vertex_ai_search and store is None:
            raise ConfigError(
                "vertex_ai_search_datastore",
                "use_vertex_ai_search is on but no datastore is set; "
                "set VERTEX_AI_SEARCH_DATASTORE or pass vertex_ai_search_datastore=",
            )

    def _check_target(self) -> None:
        if self.vertexai and not self.use_api_key and not self.project_id:
            raise ConfigError(
                "project_id",
                "Vertex AI needs a Google Cloud project; set PROJECT_ID (or GCP_PROJECT) "
                "or pass project_id=, or use an API key (use_api_key=True)",
            )
        if not self.vertexai:
            # The Gemini Developer API only takes API keys.
            self.use_api_key = True
        if self.use_api_key and self.api_key is None and self.api_key_file is None:
            raise ConfigError(
                "api_key",
                "use_api_key is on but no key was given; pass api_key=, set GOOGLE_API_KEY, "
                "or point API_KEY_FILE at a file holding the key",
            )

    # -- derived values ---------------------------------------------------------------------

    def resolved_api_key(self) -> str | None:
        """The API key from ``api_key`` or ``api_key_file``; None when not using a key."""
        if not self.use_api_key:
            return None
        if self.api_key is not None:
            return self.api_key
        assert self.api_key_file is not None
        try:
            with open(self.api_key_file, encoding="utf-8") as handle:
                key = handle.read().strip()
        except OSError as exc:
            raise ConfigError(
                "api_key_file", f"cannot read {self.api_key_file!r}: {exc.strerror}"
            ) from None
        if not key:
            raise ConfigError("api_key_file", f"{self.api_key_file!r} is empty")
        return key

    def limits_for(self, model: str) -> dict[str, int | Literal["auto"]]:
        """The rpm/tpm/max_concurrency that apply to ``model`` (defaults plus its overrides)."""
        limits: dict[str, int | Literal["auto"]] = {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_concurrency": self.max_concurrency,
        }
        limits.update((self.model_limits or {}).get(model, {}))
        return limits

    def replace(self, **changes: Any) -> GreyCloudConfig:
        """A copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return GreyCloudConfig(**values)


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)}; got {value!r}")


def check_generation_values(
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_output_tokens: int | None = None,
    thinking_level: str | None = None,
    safety_settings: Sequence[types.SafetySetting | Mapping[str, Any]] | None = None,
) -> None:
    """The generation settings' checks, shared by the config and every call's arguments."""
    if temperature is not None and not _is_number(temperature, 0.0, 2.0):
        raise ConfigError("temperature", f"must be between 0 and 2, got {temperature!r}")
    if top_p is not None and not _is_number(top_p, 0.0, 1.0):
        raise ConfigError("top_p", f"must be between 0 and 1, got {top_p!r}")
    if max_output_tokens is not None and (
        isinstance(max_output_tokens, bool)
        or not isinstance(max_output_tokens, int)
        or max_output_tokens <= 0
    ):
        raise ConfigError(
            "max_output_tokens", f"must be a positive integer, got {max_output_tokens!r}"
        )
    if thinking_level is not None:
        level = thinking_level.lower() if isinstance(thinking_level, str) else thinking_level
        _check_choice("thinking_level", level, THINKING_LEVELS)
    if safety_settings is not None:
        check_safety_settings(safety_settings)


def _is_number(value: object, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def check_safety_settings(settings: Sequence[types.SafetySetting | Mapping[str, Any]]) -> None:
    """Fail on a safety setting that is neither a ``SafetySetting`` nor a complete dict."""
    if isinstance(settings, (str, bytes, Mapping)):
        raise ConfigError("safety_settings", "must be a list of SafetySetting objects or dicts")
    for index, setting in enumerate(settings):
        if isinstance(setting, types.SafetySetting):
            continue
        if not isinstance(setting, Mapping):
            raise ConfigError(
                "safety_settings",
                f"item {index} is a {type(setting).__name__}; "
                "use a dict with 'category' and 'threshold' or a SafetySetting",
            )
        missing = [key for key in ("category", "threshold") if key not in setting]
        if missing:
            raise ConfigError(
                "safety_settings",
                f"item {index} lacks {' and '.join(missing)}; each dict needs both "
                "'category' (e.g. HARM_CATEGORY_HATE_SPEECH) and 'threshold' "
                "(e.g. BLOCK_ONLY_HIGH)",
            )
