"""``GcsEmulator``: an in-memory Cloud Storage server for tests (the ``gcp-storage-emulator``
package, run in-process on a free port) and google-cloud-storage clients pointed at it.

    with GcsEmulator() as gcs:
        gcs.create_bucket("batch-bucket")
        storage = gcs.client()                    # a google.cloud.storage.Client
        vertex_emulator.gcs_endpoint = gcs.endpoint   # batch jobs read and write here

Needs the ``dev`` extra (gcp-storage-emulator) and the ``storage`` extra (google-cloud-storage).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._ports import free_port


def anonymous_client(project: str, endpoint: str | None) -> Any:
    """A ``google.cloud.storage.Client`` for an emulated Cloud Storage at ``endpoint``."""
    import google.cloud.storage as storage  # type: ignore[import-untyped, unused-ignore]
    from google.auth.credentials import AnonymousCredentials

    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )


class GcsEmulator:
    """A Cloud Storage JSON API on ``host``, in memory, serving from a background thread."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, project: str = "test-project"):
        self.host = host
        self.project = project
        self._requested_port = port
        self._port: int | None = None
        self._server: Any = None

    def start(self) -> GcsEmulator:
        """Start serving (returns once the port is bound)."""
        if self._server is not None:
            raise RuntimeError("the Cloud Storage emulator is already running")
        try:
            from gcp_storage_emulator.server import create_server
        except ImportError as exc:
            raise ModuleNotFoundError(
                "GcsEmulator needs gcp-storage-emulator (a development dependency, in the 'dev' "
                "extra): pip install gcp-storage-emulator",
                name=exc.name,
            ) from None

        port = self._requested_port or free_port(self.host)
        server = create_server(self.host, port, in_memory=True)
        server.start()
        self._server, self._port = server, port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = self._port = None

    def __enter__(self) -> GcsEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the Cloud Storage emulator is not running; call start()")
        return self._port

    @property
    def endpoint(self) -> str:
        """e.g. ``http://127.0.0.1:PORT``: for ``client_options={"api_endpoint": ...}``,
        ``STORAGE_EMULATOR_HOST`` or ``VertexEmulator.gcs_endpoint``."""
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        """A ``google.cloud.storage.Client`` for this server, with anonymous credentials."""
        return anonymous_client(self.project, self.endpoint)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(name)

    def object_names(self) -> list[str]:
        """Every object in every bucket, as ``gs://bucket/name``."""
        storage = self.client()
        return sorted(
            f"gs://{bucket.name}/{blob.name}"
            for bucket in storage.list_buckets()
            for blob in storage.list_blobs(bucket.name)
        )

    def read(self, uri: str) -> bytes:
        """The bytes of ``gs://bucket/name``."""
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        data: bytes = self.client().bucket(bucket).blob(name).download_as_bytes()
        return data

    def wipe(self) -> None:
        """Delete every bucket and object."""
        if self._server is not None:
            self._server.wipe()

    def __repr__(self) -> str:
        where = self.endpoint if self._port is not None else "stopped"
        return f"GcsEmulator({where})"
