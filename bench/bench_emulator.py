"""Throughput of the Vertex AI emulator, measured from outside its process.

Starts ``python -m greycloud.testing`` in a subprocess and drives it over loopback:

1. small ``generateContent`` requests from ``--clients`` processes, each keeping
   ``--connections`` keep-alive connections busy for ``--seconds``: requests per second;
2. ``--streams`` ``streamGenerateContent`` calls opened at once against an emulator whose
   events are ``--event-delay`` apart, so all of them are open together: how many complete
   whole, and how long the slowest took compared with an unloaded stream.

    python bench/bench_emulator.py [--seconds 5] [--clients 2] [--connections 32] [--streams 500]

The load generator is a bare asyncio HTTP/1.1 client (pre-built request bytes,
Content-Length responses), so the figure measures the server, not a client library.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp

MODEL = "gemini-2.5-flash"
PATH = f"/v1/projects/bench/locations/us-central1/publishers/google/models/{MODEL}"
BODY = json.dumps(
    {"contents": [{"role": "user", "parts": [{"text": "Say something short about clouds."}]}]}
).encode()
TOKEN = "bench-token"


def start_emulator(event_delay: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greycloud.testing",
            "--port",
            "0",
            "--event-delay",
            str(event_delay),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return process, line.split("listening on ")[1].split()[0]


# -- 1. plain requests --------------------------------------------------------------------


async def _connection_loop(host: str, port: int, deadline: float, request: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


def _client_process(base_url: str, connections: int, seconds: float, queue: Any) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    request = (
        f"POST {PATH}:generateContent HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY

    async def run() -> int:
        deadline = time.perf_counter() + seconds
        counts = await asyncio.gather(
            *(_connection_loop(host, int(port), deadline, request) for _ in range(connections))
        )
        return sum(counts)

    queue.put(asyncio.run(run()))


def measure_requests(base_url: str, clients: int, connections: int, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_client_process, args=(base_url, connections, seconds, queue))
        for _ in range(clients)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    total = sum(int(queue.get()) for _ in workers)
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    # Process start-up is inside `elapsed`; the load itself ran for `seconds`.
    print(f"  {total} requests in {seconds:.1f} s of load ({elapsed:.1f} s with start-up)")
    return float(total) / seconds


# -- 2. concurrent streams ----------------------------------------------------------------


async def measure_streams(base_url: str, streams: int) -> dict[str, float]:
    url = f"{base_url}{PATH}:streamGenerateContent?alt=sse"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    open_now = 0
    peak_open = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> tuple[int, float]:
            nonlocal open_now, peak_open
            started = time.perf_counter()
            events = 0
            async with session.post(url, data=BODY, headers=headers) as response:
                response.raise_for_status()
                open_now += 1
                peak_open = max(peak_open, open_now)
                try:
                    async for line in response.content:
                        if line.startswith(b"data: "):
                            events += 1
                finally:
                    open_now -= 1
            return events, time.perf_counter() - started

        single_events, single = await one()
        peak_open = 0
        started = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(streams)), return_exceptions=True)
        wall = time.perf_counter() - started
    finished = [r for r in results if isinstance(r, tuple) and r[0] == single_events]
    failed = len(results) - len(finished)
    slowest = max((r[1] for r in finished), default=float("nan"))
    return {
        "streams": streams,
        "completed": len(finished),
        "failed": failed,
        "peak_open": peak_open,
        "events_per_stream": single_events,
        "single_stream_s": single,
        "slowest_s": slowest,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes")
    parser.add_argument("--connections", type=int, default=32, help="connections per process")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--event-delay", type=float, default=0.2)
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")

    process, base_url = start_emulator(event_delay=0.0)
    try:
        print(
            f"generateContent: {args.clients} client processes x {args.connections} "
            f"connections, {args.seconds:.0f} s"
        )
        rate = measure_requests(base_url, args.clients, args.connections, args.seconds)
        print(f"  => {rate:,.0f} requests/second")
    finally:
        process.terminate()
        process.wait()

    process, base_url = start_emulator(event_delay=args.event_delay)
    try:
        print(f"streamGenerateContent: {args.streams} at once, {args.event_delay} s between events")
        result = asyncio.run(measure_streams(base_url, args.streams))
        print(
            f"  => {result['completed']}/{result['streams']} complete "
            f"({result['failed']} failed), {result['peak_open']} open at once, "
            f"{result['events_per_stream']} events each; one stream alone "
            f"{result['single_stream_s']:.2f} s, slowest of {args.streams} "
            f"{result['slowest_s']:.2f} s, all done in {result['wall_s']:.2f} s"
        )
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
