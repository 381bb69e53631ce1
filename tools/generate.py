"""Generate greycloud's sync half (and the packaged copy of the async half) from ``_async_src/``.

    python tools/generate.py            write every generated file
    python tools/generate.py --check    also exit 1, naming each file that was stale, missing,
                                        extra or hand-edited, or that still holds async-only code

Outputs:
  _async_src/*.py    -> greycloud/_async/*.py   (a copy, so the package is a plain package that
                                                  mypy, wheels and editable installs all see)
  _async_src/*.py    -> greycloud/_sync/*.py    (unasync)
  tests/_async/*.py  -> tests/_sync/*.py        (unasync)

Every output starts with a header naming its source and the hash of the body it was generated
with. A file whose body no longer matches that hash was edited by hand: the generator stops,
naming it, and writes nothing (the edit belongs in the source; delete the file to regenerate it).
A file whose body matches its hash but not what its source generates today is stale and is
rewritten. An entry of REPLACEMENTS that fires in no source stops the run too, so the table
cannot keep names that no longer exist.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
    "AsyncLock": "SyncLock",
    "AsyncEvent": "SyncEvent",
    "async_redis_from_url": "sync_redis_from_url",
    "AsyncRedis": "SyncRedis",
    "AsyncPubSub": "SyncPubSub",
    "AsyncBackground": "SyncBackground",
    "AsyncResult": "SyncResult",
    "AsyncStream": "SyncStream",
    "async_check_tool": "sync_check_tool",
    "async_call_tool": "sync_call_tool",
    # the public classes
    "GreyCloudAsyncClient": "GreyCloudClient",
    "GreyCloudAsyncCache": "GreyCloudCache",
    "GreyCloudAsyncBatch": "GreyCloudBatch",
    "VertexRateLimiter": "SyncVertexRateLimiter",
    "GreyCloudAsyncChats": "GreyCloudChats",
    "GreyCloudAsyncChat": "GreyCloudChat",
    # iteration and closing
    "aclose": "close",
    "anext": "next",
    "AsyncIterator": "Iterator",
    # tests reaching a half's own module (e.g. greycloud._async.limiter_store)
    "_async": "_sync",
}

_LEFTOVER = re.compile(r"\b(async|await|asyncio|anext|aclose|aiohttp)\b|\.aio\b|\bAsync[A-Z]\w*")
_HEADER_LINES = 3
_OUTPUT_HASH = re.compile(r"^# output-sha256: ([0-9a-f]{16})$", re.MULTILINE)


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


def _header(source: str, body: str, convert: bool) -> str:
    what = "generated from" if convert else "a copy of"
    return (
        f"# DO NOT EDIT: {what} {source} by tools/generate.py.\n"
        f"# Change {source} and run `make generate`.\n"
        f"# output-sha256: {_digest(body)}\n"
    )


def unasync_texts(texts: list[str], replacements: dict[str, str]) -> list[str]:
    """``texts`` converted by unasync's public ``unasync_files``, in a scratch ``_async`` folder
    (a Rule whose folder is not in the path would write over its input: here it always is)."""
    with tempfile.TemporaryDirectory() as scratch:
        inputs = [Path(scratch, "_async", f"m{index}.py") for index in range(len(texts))]
        Path(scratch, "_async").mkdir()
        for path, text in zip(inputs, texts, strict=True):
            path.write_text(text)
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=replacements)
        unasync.unasync_files([str(path) for path in inputs], [rule])
        return [Path(scratch, "_sync", path.name).read_text() for path in inputs]


def unused_replacements(texts: list[str]) -> list[str]:
    """The REPLACEMENTS keys that unasync applies nowhere in ``texts``.

    Found by running unasync once more with every replacement turned into a marker of its own
    and looking for the markers, so the answer is what unasync did, not a guess at its rules.
    """
    markers = {key: f"GENERATE_FIRED_{index}_" for index, key in enumerate(REPLACEMENTS)}
    converted = "\n".join(unasync_texts(texts, markers))
    return [key for key, marker in markers.items() if marker not in converted]


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
    body = text
    if target.convert:
        [converted] = unasync_texts([text], REPLACEMENTS)
        body = _format(converted, f"{target.output_dir}/{source.name}")
    return _header(rel_source, body, target.convert) + body


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


def edited_by_hand(current: str) -> bool:
    """Whether a generated file's body differs from the one its header recorded (a file with no
    such header was not written by this generator, so it counts as hand-written)."""
    recorded = _OUTPUT_HASH.search(current)
    if recorded is None:
        # Headers of the generator before output hashes carried the source's hash instead.
        return "\n# source-sha256: " not in current
    body = current.split("\n", _HEADER_LINES)[-1]
    return _digest(body) != recorded.group(1)


def source_of(path: Path) -> str:
    for target in TARGETS:
        if path.parent == ROOT / target.output_dir:
            return f"{target.source_dir}/{path.name}"
    raise AssertionError(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when anything was out of date")
    check = parser.parse_args(argv).check

    converted_sources = [
        source.read_text()
        for target in TARGETS
        if target.convert
        for source in sorted((ROOT / target.source_dir).glob("*.py"))
    ]
    unused = unused_replacements(converted_sources)
    if unused:
        print(
            "tools/generate.py: REPLACEMENTS entries that fire in no source (remove them):",
            *unused,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1

    outputs = expected_outputs()
    extras = [
        existing
        for target in TARGETS
        if (ROOT / target.output_dir).exists()
        for existing in sorted((ROOT / target.output_dir).glob("*.py"))
        if existing not in outputs
    ]
    changed = [
        path for path, text in outputs.items() if not path.exists() or path.read_text() != text
    ]

    # A hand edit is never overwritten or deleted: stop before writing anything.
    edited = [
        path for path in [*changed, *extras] if path.exists() and edited_by_hand(path.read_text())
    ]
    if edited:
        print("generated files were edited by hand; nothing was written:", file=sys.stderr)
        for path in edited:
            name = path.relative_to(ROOT)
            if path in outputs:
                fix = f"make the change in {source_of(path)}"
            else:
                fix = "it has no source; move it out of the generated folder"
            print(f"  {name}: {fix}, then delete {name} and run make generate", file=sys.stderr)
        return 1

    problems: list[str] = []
    for existing in extras:
        problems.append(f"{existing.relative_to(ROOT)}: extra (no source); removed")
        existing.unlink()
    for path in changed:
        reason = "stale (its source changed; run make generate)" if path.exists() else "missing"
        problems.append(f"{path.relative_to(ROOT)}: {reason}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outputs[path])
    leftover = [
        f"{path.relative_to(ROOT)}: async leftover at {hit}"
        for path, text in outputs.items()
        if "/_sync/" in path.as_posix()
        for hit in leftovers(text)
    ]

    if check and (problems or leftover):
        print("generated code was out of date:", *problems, *leftover, sep="\n  ", file=sys.stderr)
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
