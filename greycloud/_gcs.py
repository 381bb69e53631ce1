"""Cloud Storage through google-cloud-storage: blocking helpers, shared by both batch clients.

Every function here blocks; the batch client runs them with ``run_blocking`` (off the event
loop where there is one). google-cloud-storage is the ``storage`` extra, imported on first use.
``STORAGE_EMULATOR_HOST`` is honoured by google-cloud-storage itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._core.cache_rules import guess_mime_type
from ._extras import missing_extra
from .errors import BucketNotFoundError, ConfigError

GCS_SCHEME = "gs://"


def parse_gcs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/path/to/object`` as ``("bucket", "path/to/object")`` (the path may be "")."""
    if not uri.startswith(GCS_SCHEME):
        raise ConfigError("gcs_uri", f"{uri!r} is not a Cloud Storage URI (gs://bucket/path)")
    bucket, _, name = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise ConfigError("gcs_uri", f"{uri!r} names no bucket (gs://bucket/path)")
    return bucket, name


def gcs_uri(bucket: str, name: str) -> str:
    return f"{GCS_SCHEME}{bucket}/{name}"


def make_client(project: str | None, credentials: Any) -> Any:
    """A ``google.cloud.storage.Client`` for ``project`` with these credentials."""
    try:
        # This form, not "from google.cloud import storage": with Apache Beam installed mypy
        # knows the google.cloud namespace, and then not its untyped storage module.
        import google.cloud.storage as storage  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        what = "Cloud Storage (batch jobs)"
        raise ConfigError(
            "storage", missing_extra(what, "storage", "google-cloud-storage")
        ) from None
    return storage.Client(project=project, credentials=credentials)


def require_bucket(client: Any, bucket: str) -> None:
    """Raise ``BucketNotFoundError`` naming ``bucket`` unless it exists."""
    if not client.bucket(bucket).exists():
        raise BucketNotFoundError(bucket)


def upload_bytes(client: Any, bucket: str, name: str, data: bytes, content_type: str) -> str:
    client.bucket(bucket).blob(name).upload_from_string(data, content_type=content_type)
    return gcs_uri(bucket, name)


def upload_file(
    client: Any, bucket: str, name: str, path: Path, content_type: str | None = None
) -> str:
    kind = content_type or guess_mime_type(path.name) or "application/octet-stream"
    client.bucket(bucket).blob(name).upload_from_filename(str(path), content_type=kind)
    return gcs_uri(bucket, name)


def list_names(client: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(str(blob.name) for blob in client.list_blobs(bucket, prefix=prefix))


def download_bytes(client: Any, bucket: str, name: str) -> bytes:
    data: bytes = client.bucket(bucket).blob(name).download_as_bytes()
    return data


def read_file(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
