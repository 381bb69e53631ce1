"""Generate greycloud's sync half (and the packaged copy of the async half) from ``_async_src/``.

    python tools/generate.py            write every generated file
    python tools/generate.py --check    also exit 1, naming each file that was stale, missing,
                                        extra or hand-edited, or that still holds async-only code

Outputs:
  _async_src/*.py    -> greycloud/_async/*.py   (a copy, so the package is a plain package that
                                                  mypy, wheels and editable installs all see)
  _async_src/*.py    -> greycloud/_sync/*.py    (unasync)
  tests/_async/*.py  -> tests/_sync/*.py        (unasync)

Every output starts with a header naming its source and the source's hash: a file whose header
hash matches its source but whose body differs was edited by hand; one whose hash differs is stale.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import tokenize_rt
import unasync

ROOT = Path(__file__).resolve().parent.parent

# Every Async* name gets an explicit entry, so that nothing public is renamed by accident
# (unasync's default turns AsyncX into SyncX, which is right for the primitives only).
REPLACEMENTS = {
    # primitives (greycloud/_primitives.py)
    "async_sleep": "sync_sleep",
    "async_run_blocking": "sync_run_blocking",
    "async_map_bounded": "sync_map_bounded",
    "async_sdk": "sync_sdk",
    "async_close_sdk": "sync_close_sdk",
    "async_run_work": "sync_run_work",
    "async_close_iterator": "sync_close_iterator",
    "AsyncWork": "SyncWork",
    "AsyncSdk": "SyncSdk",
    "AsyncLock": "SyncLock",
    "AsyncSemaphore": "SyncSemaphore",
    "AsyncEvent": "SyncEvent",
    "async_redis_from_url": "sync_redis_from_url",
    "AsyncRedis": "SyncRedis",
    "AsyncPubSub": "SyncPubSub",
    "AsyncBackground": "SyncBackground",
    # the public classes
    "GreyCloudAsyncClient": "GreyCloudClient",
    "GreyCloudAsyncCache": "GreyCloudCache",
    "GreyCloudAsyncBatch": "GreyCloudBatch",
    "VertexRateLimiter": "SyncVertexRateLimiter",
    # iteration and closing
    "aclose": "close",
    "anext": "next",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "_async": "_sync",
}

_LEFTOVER = re.compile(r"\b(async|await|asyncio|anext|aclose|aiohttp)\b|\.aio\b|\bAsync[A-Z]\w*")
_HEADER = re.compile(r"^# source-sha256: ([0-9a-f]{16})$", re.MULTILINE)


@dataclass(frozen=True)
class Target:
    source_dir: str
    output_dir: str
    convert: bool  # False: copy as it is


TARGETS = (
    Target("_async_src", "greycloud/_async", convert=False),
    Target("_async_src", "greycloud/_sync", convert=True),
    Target("tests/_async", "tests/_sync", convert=True),
)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _header(source: str, text: str, convert: bool) -> str:
    what = "generated from" if convert else "a copy of"
    return (
        f"# DO NOT EDIT: {what} {source} by tools/generate.py.\n"
        f"# Change {source} and run `make generate`.\n"
        f"# source-sha256: {_digest(text)}\n"
    )


def _unasync(text: str) -> str:
    rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
    tokens = tokenize_rt.src_to_tokens(text)
    return str(tokenize_rt.tokens_to_src(list(rule._unasync_tokens(tokens))))


def _ruff(args: list[str], text: str, filename: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", filename, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode not in (0, 1) or not result.stdout:
        raise SystemExit(f"ruff failed on {filename}:\n{result.stderr}")
    return result.stdout


def _format(text: str, filename: str) -> str:
    # The project's own fixable lint rules, so generated code is as clean as its source
    # (unasync can leave e.g. nested `with` blocks that one statement would express).
    text = _ruff(["check", "--fix-only", "--quiet"], text, filename)
    return _ruff(["format", "--quiet"], text, filename)


def render(target: Target, source: Path) -> str:
    """The exact text that ``source`` generates for ``target``."""
    text = source.read_text()
    rel_source = source.relative_to(ROOT).as_posix()
    body = _unasync(text) if target.convert else text
    out_name = f"{target.output_dir}/{source.name}"
    if target.convert:
        body = _format(body, out_name)
    return _header(rel_source, text, target.convert) + body


def leftovers(text: str) -> list[str]:
    """Async-only tokens left in generated sync code, as 'line N: token'."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("# "):
            continue
        for match in _LEFTOVER.finditer(line):
            found.append(f"line {number}: {match.group(0)}")
    return found


def expected_outputs() -> dict[Path, str]:
    outputs: dict[Path, str] = {}
    for target in TARGETS:
        for source in sorted((ROOT / target.source_dir).glob("*.py")):
            out = ROOT / target.output_dir / source.name
            assert out.resolve() != source.resolve(), "generator would overwrite its source"
            outputs[out] = render(target, source)
    return outputs


def _problem(path: Path, wanted: str) -> str | None:
    if not path.exists():
        return "missing"
    current = path.read_text()
    if current == wanted:
        return None
    recorded = _HEADER.search(current)
    expected = _HEADER.search(wanted)
    if recorded and expected and recorded.group(1) == expected.group(1):
        return "hand-edited (its source did not change; edit the source instead)"
    return "stale (its source changed; run make generate)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when anything was out of date")
    check = parser.parse_args(argv).check

    outputs = expected_outputs()
    problems: list[str] = []
    for target in TARGETS:
        out_dir = ROOT / target.output_dir
        for existing in sorted(out_dir.glob("*.py")) if out_dir.exists() else []:
            if existing not in outputs:
                problems.append(f"{existing.relative_to(ROOT)}: extra (no source); removed")
                existing.unlink()
    for path, text in outputs.items():
        reason = _problem(path, text)
        if reason:
            problems.append(f"{path.relative_to(ROOT)}: {reason}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if "/_sync/" in path.as_posix():
            problems.extend(
                f"{path.relative_to(ROOT)}: async leftover at {hit}" for hit in leftovers(text)
            )

    leftover = [p for p in problems if "async leftover" in p]
    if check and problems:
        print("generated code was out of date:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    if leftover:
        print(
            "generated sync code still holds async-only tokens:",
            *leftover,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    for line in problems:
        print(f"updated {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
