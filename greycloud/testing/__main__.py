"""``python -m greycloud.testing``: run the Vertex AI emulator in the foreground."""

from __future__ import annotations

import argparse
import logging

from ._serve import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m greycloud.testing", description="Run a local Vertex AI emulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute per model")
    parser.add_argument("--tpm", type=int, default=None, help="input tokens per minute per model")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--capacity",
        type=float,
        default=None,
        help="requests per second each model's hidden shared pool serves (429 beyond it)",
    )
    parser.add_argument(
        "--event-delay", type=float, default=0.0, help="seconds between stream events"
    )
    parser.add_argument("--project", default="test-project")
    parser.add_argument("--location", default="us-central1")
    parser.add_argument("--batch-step", type=float, default=0.2)
    parser.add_argument(
        "--strict-auth", action="store_true", help="accept only the emulator's own tokens"
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    try:
        serve(
            args.port,
            args.rpm,
            args.tpm,
            args.latency,
            capacity=args.capacity,
            event_delay=args.event_delay,
            host=args.host,
            project=args.project,
            location=args.location,
            batch_step=args.batch_step,
            accept_any_token=not args.strict_auth,
        )
    except RuntimeError as exc:  # the port is taken, or the host is not an address here
        parser.exit(2, f"{parser.prog}: {exc}\n")


if __name__ == "__main__":
    main()
