"""``greycloud run`` at full speed and constant memory (issue 14, item 3).

1. Speed: ``--prompts`` short prompts at ``--concurrency`` against the emulator with no quota,
   ``greycloud run`` and a plain google-genai asyncio script with a semaphore
   (``plain_genai_run.py``) side by side, in alternating order, ``--rounds`` times each; the
   ratio of their best times. Target: greycloud run <= 1.15x the script.
2. Memory: peak RSS of ``greycloud run`` on an input of ``--big`` lines and of ``--small`` lines.
   Each run is stopped with SIGINT once ``--settle`` answers are written (after its input check
   and into the steady state), so both pay the same work apart from the input's size.
   Target: big <= 2x small.

    python bench_run_speed.py                      # 20,000 prompts; 1,000,000 vs 10,000 lines
    python bench_run_speed.py --prompts 2000 --big 100000   # a quick look

The emulator runs in a process of its own (``python -m greycloud.testing``); both clients use
its API key (express mode) and no retries, and greycloud run gets a huge --rpm/--tpm so that
the limiter never waits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def start_emulator() -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "greycloud.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = key = ""
    while not (url and key):
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator did not start")
        if "listening on" in line:
            url = line.split("listening on ")[1].split()[0]
        if "x-goog-api-key" in line:
            key = line.rsplit(" ", 1)[1].strip()
    return process, url, key


def write_prompts(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for n in range(count):
            handle.write(json.dumps({"id": f"p{n}", "prompt": f"Say something about {n}."}))
            handle.write("\n")
    return path


def environment(url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREYCLOUD_", "GOOGLE_"))}
    env.update(
        PROJECT_ID="bench",
        LOCATION="us-central1",
        USE_API_KEY="1",
        GOOGLE_API_KEY=key,
        GREYCLOUD_ENDPOINT=url,
        GREYCLOUD_API_VERSION="v1",
    )
    return env


def greycloud_run(prompts: Path, output: Path, concurrency: int) -> list[str]:
    return [
        sys.executable, "-m", "greycloud.cli", "run", str(prompts), "-o", str(output),
        "--concurrency", str(concurrency), "--rpm", "100000000", "--tpm", "1000000000",
        "--max-retries", "0", "--log-interval", "3600",
    ]  # fmt: skip


def plain_script(prompts: Path, output: Path, concurrency: int) -> list[str]:
    return [
        sys.executable, str(HERE / "plain_genai_run.py"), str(prompts), str(output),
        "--concurrency", str(concurrency),
    ]  # fmt: skip


def timed(
    command: list[str], env: dict[str, str], output: Path, expected: int
) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one complete run."""
    output.unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    assert process.stderr is not None
    errors = process.stderr.read()
    lines = output.read_bytes().count(b"\n") if output.exists() else 0
    if os.waitstatus_to_exitcode(status) != 0 or lines != expected:
        raise RuntimeError(f"{command[1]} failed ({lines} lines): {errors[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def speed(work: Path, env: dict[str, str], count: int, concurrency: int, rounds: int) -> None:
    prompts = write_prompts(work / "speed.jsonl", count)
    output = work / "speed-out.jsonl"
    runs: dict[str, list[tuple[float, float]]] = {
        "plain google-genai script": [],
        "greycloud run": [],
    }
    for round_number in range(rounds):
        order = list(runs) if round_number % 2 == 0 else list(reversed(runs))
        for name in order:
            build = plain_script if name.startswith("plain") else greycloud_run
            wall, cpu = timed(build(prompts, output, concurrency), env, output, count)
            runs[name].append((wall, cpu))
            print(f"  round {round_number + 1}: {name}: {wall:.1f} s ({cpu:.1f} s CPU)", flush=True)
    best = {name: min(wall for wall, _ in values) for name, values in runs.items()}
    cpu = {name: min(cpu for _, cpu in values) for name, values in runs.items()}
    print(f"\n{count:,} prompts, concurrency {concurrency}, best of {rounds}:")
    for name, seconds in best.items():
        print(
            f"  {name:28} {seconds:7.1f} s   {count / seconds:7.0f} lines/s   "
            f"{cpu[name]:6.1f} s CPU"
        )
    script, run = "plain google-genai script", "greycloud run"
    print(f"  ratio greycloud run / script: {best[run] / best[script]:.2f}x (target <= 1.15x)")
    print(f"  CPU ratio: {cpu[run] / cpu[script]:.2f}x")


def peak_rss(work: Path, env: dict[str, str], lines: int, settle: int, concurrency: int) -> int:
    """Peak RSS (bytes) of greycloud run on ``lines`` input lines, stopped after ``settle``."""
    prompts = write_prompts(work / f"memory-{lines}.jsonl", lines)
    output = work / f"memory-{lines}-out.jsonl"
    output.unlink(missing_ok=True)
    process = subprocess.Popen(
        greycloud_run(prompts, output, concurrency),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not output.exists() or output.read_bytes().count(b"\n") < settle:
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    prompts.unlink()
    return int(usage.ru_maxrss) * 1024  # Linux reports KiB


def memory(work: Path, env: dict[str, str], small: int, big: int, settle: int, conc: int) -> None:
    figures = {lines: peak_rss(work, env, lines, settle, conc) for lines in (small, big)}
    print(f"\npeak RSS of greycloud run, stopped after {settle:,} answers:")
    for lines, rss in figures.items():
        print(f"  {lines:>10,} input lines: {rss / 2**20:6.1f} MiB")
    print(f"  ratio: {figures[big] / figures[small]:.2f}x (target <= 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--settle", type=int, default=2_000)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    arguments = parser.parse_args()
    emulator, url, key = start_emulator()
    try:
        env = environment(url, key)
        with tempfile.TemporaryDirectory() as directory:
            work = Path(directory)
            if not arguments.skip_speed:
                speed(work, env, arguments.prompts, arguments.concurrency, arguments.rounds)
            if not arguments.skip_memory:
                memory(
                    work, env, arguments.small, arguments.big, arguments.settle,
                    arguments.concurrency,
                )  # fmt: skip
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()
