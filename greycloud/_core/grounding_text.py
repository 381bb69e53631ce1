"""Vertex AI Search grounding, the pure part: queries, endpoints, results and the sources block.

No I/O here. The search itself (HTTP, retries, logging) is in ``_async_src/grounding.py``; this
module decides what is asked, where, and how the answer is put in front of the user's message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.genai import types

from .request import Contents, is_content, text_of

# One logger for both clients, so callers can watch grounding without knowing module paths.
GROUNDING_LOGGER = "greycloud.grounding"

MAX_SOURCES = 5  # results asked for and put in the block
MAX_BLOCK_CHARS = 8_000  # about 2,000 tokens; later sources are cut first
MAX_QUERY_CHARS = 1_000  # greycloud's own cap: a whole pasted document is no search query
SERVING_CONFIG = "default_search"
_MIN_CUT_SNIPPET = 40  # a cut snippet shorter than this is dropped rather than kept

SOURCES_START = "<sources>"
SOURCES_END = "</sources>"
INSTRUCTION = (
    "Answer using only the numbered sources between <sources> and </sources>. Quote or restate "
    "only what they say, cite each statement with the number of its source in square brackets, "
    "e.g. [1], and say so if the sources do not contain the answer."
)

# -- the query ---------------------------------------------------------------------------------

_STRAIGHT = '"＂'  # straight and full-width: open or close
_OPENING = frozenset(_STRAIGHT + "“")
_CLOSING = frozenset(_STRAIGHT + "”")
_QUOTES = _OPENING | _CLOSING
_BEFORE_OPENING = frozenset("([{<-/:")
_AFTER_CLOSING = frozenset(".,;:!?)]}>-/…")


def _can_open(before: str, after: str) -> bool:
    return (not before or before.isspace() or before in _BEFORE_OPENING) and (
        bool(after) and not after.isspace()
    )


def _can_close(before: str, after: str) -> bool:
    return (bool(before) and not before.isspace()) and (
        not after or after.isspace() or after in _AFTER_CLOSING or after in _QUOTES
    )


def normalise_query(text: str) -> str:
    """The search query for a user message: quoted phrases become plain keywords.

    Keyword search treats a quoted phrase as "this exact phrase", which often finds nothing, so
    balanced pairs of double quotes (straight ``"``, curly ``“ ”``, full-width ``＂``) are
    removed and their words kept. A quote that closes nothing right after a digit is a unit
    mark (``15" laptop``) and stays; any other unpaired quote is dropped. Whitespace is
    collapsed and the result capped at ``MAX_QUERY_CHARS`` (cut between words).
    """
    drop: set[int] = set()
    unpaired: list[int] = []
    open_at: int | None = None
    for index, char in enumerate(text):
        if char not in _QUOTES:
            continue
        before = text[index - 1] if index else ""
        after = text[index + 1] if index + 1 < len(text) else ""
        if open_at is not None and char in _CLOSING and _can_close(before, after):
            drop.update((open_at, index))
            open_at = None
        elif open_at is None and char in _OPENING and _can_open(before, after):
            open_at = index
        else:
            unpaired.append(index)
    if open_at is not None:
        unpaired.append(open_at)
    # A pair is cut out (its neighbours are spaces or punctuation already); a stray quote can
    # sit inside a word, so it becomes a space.
    stray = {i for i in unpaired if not (i and text[i - 1].isdigit())}
    kept = "".join("" if i in drop else " " if i in stray else char for i, char in enumerate(text))
    return _cap(" ".join(kept.split()), MAX_QUERY_CHARS)


def strip_quotes(query: str) -> str:
    """``query`` without any double quote at all (the retry when the first search found none)."""
    return " ".join("".join(" " if c in _QUOTES else c for c in query).split())


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > 0 else cut


# -- where to search ---------------------------------------------------------------------------


def datastore_location(datastore: str) -> str:
    """``L`` of ``projects/P/locations/L/collections/C/dataStores/D``."""
    parts = datastore.split("/")
    if len(parts) < 4 or parts[0] != "projects" or parts[2] != "locations":
        raise ValueError(f"{datastore!r} is not a datastore path")
    return parts[3]


def search_endpoint(location: str) -> str:
    """The Discovery Engine endpoint for a datastore location (``global``, ``us``, ``eu``)."""
    if location == "global":
        return "https://discoveryengine.googleapis.com"
    return f"https://{location}-discoveryengine.googleapis.com"


def search_url(datastore: str, endpoint: str | None = None) -> str:
    """The ``:search`` URL of the datastore's default serving config (``endpoint`` overrides)."""
    base = endpoint if endpoint else search_endpoint(datastore_location(datastore))
    return f"{base.rstrip('/')}/v1/{datastore}/servingConfigs/{SERVING_CONFIG}:search"


def search_body(query: str, page_size: int = MAX_SOURCES) -> dict[str, Any]:
    return {
        "query": query,
        "pageSize": page_size,
        "contentSearchSpec": {"snippetSpec": {"returnSnippet": True}},
    }


# -- what came back ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One search result as it goes into the block: cleaned title, link and text."""

    title: str
    link: str
    text: str


class MalformedSearchResponse(ValueError):
    """The search answered 200 with a body that is not a search response."""


class SearchFailed(Exception):
    """A search attempt did not produce results; ``transient`` ones are worth retrying."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


_BREAK_TAG = re.compile(r"<\s*(br|/?p|/?div|/?li)\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>")
_DELIMITER = re.compile(r"<\s*/?\s*sources\s*>", re.IGNORECASE)
_NO_SNIPPET = "NO_SNIPPET_AVAILABLE"


def clean_snippet(text: str) -> str:
    """Plain text from a search snippet: no tags (``<b>`` highlights), no entities, one line.

    The block's own delimiters are removed too, so a document cannot close the block early.
    """
    text = _TAG.sub("", _BREAK_TAG.sub(" ", text))
    text = _DELIMITER.sub(" ", html.unescape(text))
    return " ".join(text.split())


def _texts(items: object, key: str) -> list[str]:
    if not isinstance(items, Sequence) or isinstance(items, str):
        return []
    found = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        status = item.get("snippet_status") or item.get("snippetStatus")
        value = item.get(key)
        if isinstance(value, str) and status != _NO_SNIPPET:
            cleaned = clean_snippet(value)
            if cleaned:
                found.append(cleaned)
    return found


def parse_search_response(payload: object) -> list[Source]:
    """The results of a ``:search`` response, in order, each with some text to quote.

    Text comes from ``derivedStructData.snippets``; a result without a usable snippet falls
    back to its extractive answers or segments, and is skipped when it has none of them.
    Raises ``MalformedSearchResponse`` when the body is not shaped like a search response.
    """
    if not isinstance(payload, Mapping):
        raise MalformedSearchResponse("the search response is not a JSON object")
    results = payload.get("results", [])
    if not isinstance(results, list):
        raise MalformedSearchResponse("'results' in the search response is not a list")
    sources = []
    for result in results:
        if not isinstance(result, Mapping):
            raise MalformedSearchResponse("a search result is not a JSON object")
        document = result.get("document")
        if not isinstance(document, Mapping):
            continue
        derived = document.get("derivedStructData")
        derived = derived if isinstance(derived, Mapping) else {}
        struct = document.get("structData")
        struct = struct if isinstance(struct, Mapping) else {}
        texts = (
            _texts(derived.get("snippets"), "snippet")
            or _texts(derived.get("extractive_answers"), "content")
            or _texts(derived.get("extractive_segments"), "content")
        )
        if not texts:
            continue
        title = derived.get("title") or struct.get("title") or document.get("id") or ""
        link = derived.get("link") or struct.get("uri") or struct.get("link") or ""
        sources.append(Source(clean_snippet(str(title)), clean_snippet(str(link)), " ".join(texts)))
    return sources


# -- the block ---------------------------------------------------------------------------------


def build_sources_block(sources: Sequence[Source], max_chars: int = MAX_BLOCK_CHARS) -> str:
    """The instruction and the numbered sources, at most ``max_chars`` long ("" for none).

    Sources keep their search order and numbers; when the cap is reached the last source that
    fits is cut between words (marked ``…``) and the ones after it are left out, so later
    snippets are always cut before earlier ones.
    """
    head = f"{INSTRUCTION}\n\n{SOURCES_START}\n"
    tail = f"{SOURCES_END}\n"
    budget = max_chars - len(head) - len(tail)
    entries: list[str] = []
    for number, source in enumerate(sources, 1):
        label = f"[{number}] {source.title or 'Untitled'}"
        if source.link:
            label += f" ({source.link})"
        entry = f"{label}\n{source.text}\n"
        if len(entry) <= budget:
            entries.append(entry)
            budget -= len(entry)
            continue
        room = budget - len(label) - 3  # two newlines and the ellipsis
        if room >= _MIN_CUT_SNIPPET:
            entries.append(f"{label}\n{_cap(source.text, room)}…\n")
        break
    if not entries:
        return ""
    return head + "".join(entries) + tail


# -- where it goes -----------------------------------------------------------------------------


def _role(item: object) -> str | None:
    if isinstance(item, types.Content):
        return item.role
    if isinstance(item, Mapping):
        role = item.get("role")
        return str(role) if role is not None else None
    return None


def _last_user_message(items: list[Any]) -> tuple[int, int] | None:
    """``items[start:end]``: the last user message, as the SDK groups contents.

    A ``Content`` (or dict) with role ``user`` or no role is one message; a nested list is one
    user message; a run of consecutive parts (strings, ``Part``, part dicts, files) is one.
    """
    index = len(items) - 1
    while index >= 0:
        item = items[index]
        if is_content(item):
            if _role(item) in (None, "user"):
                return index, index + 1
            index -= 1
            continue
        if isinstance(item, list):
            return index, index + 1
        start = index
        while (
            start > 0
            and not is_content(items[start - 1])
            and not isinstance(items[start - 1], list)
        ):
            start -= 1
        return start, index + 1
    return None


def _parts_of(item: Any) -> list[Any]:
    if isinstance(item, types.Content):
        return list(item.parts or [])
    if isinstance(item, Mapping):
        return list(item.get("parts") or [])
    return [item]


def _as_list(contents: Contents) -> list[Any]:
    return list(contents) if isinstance(contents, list) else [contents]


def last_user_text(contents: Contents) -> str:
    """The text of the last user message in ``contents`` ("" when there is none)."""
    items = _as_list(contents)
    where = _last_user_message(items)
    if where is None:
        return ""
    start, end = where
    if isinstance(items[start], list):
        parts = list(items[start])
    else:
        parts = [part for item in items[start:end] for part in _parts_of(item)]
    return " ".join(text for text in (text_of(part).strip() for part in parts) if text)


def with_sources(contents: Contents, block: str) -> Contents:
    """New contents with ``block`` as the first part of the last user message.

    The caller's objects are never changed: the message that gets the block is rebuilt, every
    other item is passed on as it is.
    """
    items = _as_list(contents)
    where = _last_user_message(items)
    if where is None or not block:
        return contents
    start, end = where
    item = items[start]
    replacement: list[Any]
    if is_content(item):
        content = item if isinstance(item, types.Content) else types.Content.model_validate(item)
        parts = [types.Part(text=block), *(content.parts or [])]
        replacement = [types.Content(role=content.role or "user", parts=parts)]
    elif isinstance(item, list):
        replacement = [[block, *item]]
    else:
        replacement = [block, *items[start:end]]
    return [*items[:start], *replacement, *items[end:]]
