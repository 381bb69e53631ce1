"""``greycloud embed``: its input lines, the runner that embeds them, and its output lines.

It runs on ``greycloud run``'s machinery (``run_command.run_file``: input check, journal,
resume, progress) as a ``LineKind``; what differs is that lines are sent in groups, as many as
one embedding request of the model takes, and that an output line carries a vector instead of
a text.

Input: one JSON object a line, ``{"id", "text"}`` or ``{"id", "contents"}`` (a Content, or a
list of strings, parts or Contents whose parts make one input), with optional ``task_type``,
``title`` (documents only: task type RETRIEVAL_DOCUMENT) and ``metadata``. Output:
``{"id", "model", "embedding", "tokens", "truncated", "attempts", "error"}`` (and
``metadata``); ``tokens`` and ``truncated`` are null where the service does not report them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from google.genai import types

from .._async.client import GreyCloudAsyncClient
from .._core.embedding import TASK_TYPES, check_dimensions, input_problem, limits_for
from .._core.request import is_content
from .._core.retry import worth_splitting
from ..config import GreyCloudConfig
from .group_commit import GroupCommit
from .jsonl_input import Parse
from .progress import Reporter, RunTally
from .prompts import PromptLine, load_object
from .results import LineResult, TokenUsage, failed
from .run_command import LineKind, RunOptions
from .runner import RUN_STOPPING_ERRORS, BulkRunner, RunStopped

EMBED_KEYS = frozenset({"id", "text", "contents", "task_type", "title", "metadata"})
# Lines held back while they wait for more lines of their task type and title; past this the
# oldest group goes out unfilled, so memory stays flat whatever the input.
MAX_HELD_LINES = 2_000


def embed_lines(task_type: str | None, dimensions: int | None) -> LineKind:
    """``greycloud embed``'s lines: ``--task-type`` for lines without one, ``--dimensions``."""

    def check(config: GreyCloudConfig) -> Parse[PromptLine]:
        # A bad --dimensions for the model stops the command before the input is read.
        check_dimensions(config.embedding_model, config.vertexai, dimensions)
        text_only = limits_for(config.embedding_model, config.vertexai).text_only
        parse = embed_line_parser(task_type)

        def checked(number: int, text: str) -> tuple[PromptLine | None, list[str]]:
            line, problems = parse(number, text)
            if line is None:
                return None, problems
            problem = input_problem(input_of(line), text_only)
            if problem is not None:
                return None, [f"{problem} (model {config.embedding_model})"]
            return line, []

        return checked

    def runner(
        client: GreyCloudAsyncClient,
        output: GroupCommit,
        tally: RunTally,
        reporter: Reporter,
        options: RunOptions,
    ) -> BulkRunner:
        return EmbedRunner(
            client,
            output,
            tally,
            reporter,
            max_retries=options.max_retries,
            concurrency=client.config.max_concurrency,
            output_dimensionality=dimensions,
        )

    return LineKind(check, embed_line_parser(task_type), runner)


# -- input ----------------------------------------------------------------------------------------


def embed_line_parser(default_task_type: str | None) -> Parse[PromptLine]:
    """Checks one input line; a line without ``task_type`` takes ``default_task_type``."""

    def parse(number: int, text: str) -> tuple[PromptLine | None, list[str]]:
        data, problems = load_object(text, EMBED_KEYS)
        if data is None:
            return None, problems
        content = _input(data, problems)
        task_type = data.get("task_type", default_task_type)
        if "task_type" in data and (
            not isinstance(task_type, str) or task_type.upper() not in TASK_TYPES
        ):
            problems.append(f"'task_type' must be one of {', '.join(TASK_TYPES)}")
        title = data.get("title")
        if "title" in data:
            if not isinstance(title, str) or not title:
                problems.append("'title' must be a non-empty string")
            elif not isinstance(task_type, str) or task_type.upper() != "RETRIEVAL_DOCUMENT":
                problems.append(
                    "'title' applies only to documents: give the line \"task_type\": "
                    '"RETRIEVAL_DOCUMENT" (or pass --task-type RETRIEVAL_DOCUMENT)'
                )
        if problems or content is None:
            return None, problems
        settings = {
            "task_type": task_type.upper() if isinstance(task_type, str) else None,
            "title": title,
        }
        return PromptLine(
            line_number=number,
            id=data["id"],
            contents=[content],
            settings=settings,
            metadata=data.get("metadata"),
        ), []

    return parse


def input_of(line: PromptLine) -> types.Content:
    """The one input of an embed line (its ``contents`` holds just that)."""
    content = line.contents[0]
    assert isinstance(content, types.Content)
    return content


def _input(data: dict[str, Any], problems: list[str]) -> types.Content | None:
    """The one input of a line as a Content, or None (with the problem noted)."""
    has_text, has_contents = "text" in data, "contents" in data
    if has_text == has_contents:
        problems.append(
            "needs exactly one of 'text' (a string) and 'contents' (a Content or a list)"
            if not has_text
            else "has both 'text' and 'contents'; keep one"
        )
        return None
    if has_text:
        text = data["text"]
        if not isinstance(text, str) or not text.strip():
            problems.append("'text' must be a non-empty string")
            return None
        return types.Content(role="user", parts=[types.Part(text=text)])
    contents = data["contents"]
    items = contents if isinstance(contents, list) else [contents]
    if not items or not all(isinstance(item, str | Mapping) for item in items):
        problems.append("'contents' must be a Content or a non-empty list of strings and parts")
        return None
    parts: list[types.Part] = []
    try:
        for item in items:
            if isinstance(item, str):
                parts.append(types.Part(text=item))
            elif is_content(item):
                parts.extend(types.Content.model_validate(item).parts or [])
            else:
                parts.append(types.Part.model_validate(item))
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"'contents': {where}: {error['msg']}")
        return None
    if not parts:
        problems.append("'contents' holds no parts")
        return None
    return types.Content(role="user", parts=parts)


# -- output ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingResult(LineResult):
    """One output line of ``greycloud embed``: the vector, or why the line failed for good."""

    embedding: list[float] | None = None
    truncated: bool | None = None

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "embedding": self.embedding,
            "tokens": None if self.usage is None else self.usage.prompt,
            "truncated": self.truncated,
            "attempts": self.attempts,
            "error": self.error,
        }
        if self.metadata is not None:
            record["metadata"] = self.metadata
        return record


def _embedded(
    line: PromptLine, model: str, embedding: types.ContentEmbedding, attempts: int, refused: int
) -> EmbeddingResult:
    statistics = embedding.statistics
    tokens = (
        None if statistics is None or statistics.token_count is None else statistics.token_count
    )
    return EmbeddingResult(
        id=line.id,
        model=model,
        attempts=attempts,
        rate_limited=refused,
        usage=None if tokens is None else TokenUsage(prompt=int(tokens), total=int(tokens)),
        metadata=line.metadata,
        embedding=list(embedding.values or []),
        truncated=None if statistics is None else statistics.truncated,
    )


# -- running --------------------------------------------------------------------------------------


def group_lines(
    lines: Iterable[PromptLine], size: int, max_held: int = MAX_HELD_LINES
) -> Iterator[list[PromptLine]]:
    """Lines of the same task type and title, ``size`` at a time, in the order the groups
    fill; past ``max_held`` waiting lines the oldest group goes out unfilled, so the input is
    read as it goes, never held whole."""
    held: dict[tuple[Any, Any], list[PromptLine]] = {}
    count = 0
    for line in lines:
        key = (line.settings["task_type"], line.settings["title"])
        group = held.setdefault(key, [])
        group.append(line)
        count += 1
        if len(group) == size:
            count -= len(held.pop(key))
            yield group
        elif count > max_held:
            oldest = next(iter(held))
            count -= len(held[oldest])
            yield held.pop(oldest)
    yield from held.values()


class EmbedRunner(BulkRunner):
    """Sends lines with the same task type and title in groups of one request's worth."""

    def __init__(
        self,
        client: GreyCloudAsyncClient,
        output: GroupCommit,
        tally: RunTally,
        reporter: Reporter,
        *,
        max_retries: int,
        concurrency: int,
        output_dimensionality: int | None,
    ) -> None:
        super().__init__(
            client, output, tally, reporter, max_retries=max_retries, concurrency=concurrency
        )
        self._model = client.config.embedding_model
        self._dimensions = output_dimensionality
        self._group_size = limits_for(self._model, client.config.vertexai).max_inputs

    def groups(self, lines: Iterable[PromptLine]) -> Iterator[Sequence[PromptLine]]:
        return group_lines(lines, self._group_size)

    async def _run_group(self, group: Sequence[PromptLine]) -> list[LineResult]:
        attempts = self.attempts()
        settings = group[0].settings
        try:
            response = await self._client.embed_content(
                [input_of(line) for line in group],
                self._model,
                task_type=settings["task_type"],
                title=settings["title"],
                output_dimensionality=self._dimensions,
                max_retries=self._max_retries,
                on_retry=attempts.on_retry,
            )
        except RUN_STOPPING_ERRORS as exc:
            raise RunStopped(exc) from exc
        except Exception as exc:  # any other failure belongs to this group alone
            if len(group) > 1 and worth_splitting(exc):
                # One bad line must not fail the others: send them one by one to find it.
                return [result for line in group for result in await self._run_group([line])]
            attempts.gave_up(exc)
            return [
                failed(
                    line, self._model, exc, attempts.count, attempts.rate_limited, EmbeddingResult
                )
                for line in group
            ]
        return [
            _embedded(line, self._model, embedding, attempts.count, attempts.rate_limited)
            for line, embedding in zip(group, response.embeddings or [], strict=True)
        ]
