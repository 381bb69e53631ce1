"""``serve()``: run the emulator in the foreground until Ctrl-C (the CLI's emulator mode)."""

from __future__ import annotations

import threading

from ._emulator import VertexEmulator


def serve(
    port: int = 8080,
    rpm: int | None = None,
    tpm: int | None = None,
    latency: float = 0.0,
    *,
    capacity: float | None = None,
    event_delay: float = 0.0,
    host: str = "127.0.0.1",
    project: str = "test-project",
    location: str = "us-central1",
    model_quotas: dict[str, dict[str, int | None]] | None = None,
    batch_step: float = 0.2,
    accept_any_token: bool = True,
    stop: threading.Event | None = None,
) -> None:
    """Serve on ``host:port`` until Ctrl-C (or until ``stop`` is set), printing how to use it.

    Any bearer token is accepted by default, so a client using real Application Default
    Credentials works unchanged; pass ``accept_any_token=False`` to demand the emulator's own.
    Only the last 1,000 requests are kept (for ``requests()``), so memory stays flat.
    ``capacity`` (requests per second) turns on capacity mode: each model's hidden shared pool
    serves that many and refuses the excess with 429, as Dynamic Shared Quota does.
    """
    emulator = VertexEmulator(
        port=port,
        host=host,
        rpm=rpm,
        tpm=tpm,
        latency=latency,
        capacity=capacity,
        event_delay=event_delay,
        project=project,
        location=location,
        model_quotas=model_quotas,
        batch_step=batch_step,
        max_records=1000,
        accept_any_token=accept_any_token,
    )
    with emulator:
        try:
            limits = (
                f"rpm={_limit(rpm)}, tpm={_limit(tpm)}, latency={latency}s, "
                f"event_delay={event_delay}s"
            )
            if capacity is not None:
                limits += f", capacity={capacity:g} requests/s per model"
            print(f"Vertex AI emulator listening on {emulator.base_url} ({limits})", flush=True)
            print(
                "Point greycloud at it:\n"
                f"    GreyCloudConfig(project_id={project!r}, location={location!r}, "
                f"endpoint={emulator.base_url!r}, api_version='v1')\n"
                "or the raw SDK:\n"
                f"    genai.Client(vertexai=True, project={project!r}, location={location!r}, "
                "http_options=types.HttpOptions("
                f"base_url={emulator.base_url!r}, api_version='v1'))\n"
                "Environment for greycloud (GreyCloudConfig() and the greycloud command), as is:\n"
                f"    export PROJECT_ID={project} LOCATION={location}\n"
                f"    export GREYCLOUD_ENDPOINT={emulator.base_url} GREYCLOUD_API_VERSION=v1\n"
                f"    export GREYCLOUD_ACCESS_TOKEN={emulator.token}\n"
                "and for the raw SDK:\n"
                f"    export GOOGLE_VERTEX_BASE_URL={emulator.base_url}\n"
                f"API key (x-goog-api-key): {emulator.api_key}\n"
                f"Bearer token: {emulator.token}"
                + ("  (any bearer token is accepted)" if accept_any_token else "")
                + "\nPress Ctrl-C to stop.",
                flush=True,
            )
            waiter = stop or threading.Event()
            while not waiter.wait(0.5):
                pass
        # The banner is inside the try: a Ctrl-C right after it must still stop cleanly.
        except KeyboardInterrupt:
            print("\nStopping the emulator.", flush=True)


def _limit(value: int | None) -> str:
    # 0 is a quota too (every request is refused), not "no limit".
    return "unlimited" if value is None else str(value)
