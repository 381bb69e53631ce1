"""Vertex AI Search (Discovery Engine) ``:search`` on a small, configurable document set.

    POST /v1/projects/P/locations/L/collections/C/dataStores/D/servingConfigs/S:search

Matching is plain keyword matching, scored by how many distinct query words a document holds;
a phrase in double quotes must appear as it is, and a word with a stray quote (``15"``) must
appear with it, which is how quoted queries come to find nothing. Answers have the real shape:
``results[].document.derivedStructData`` with ``title``, ``link`` and ``snippets[].snippet``
(HTML-escaped, matched words in ``<b>``), plus ``totalSize`` and ``attributionToken``.
"""

from __future__ import annotations

import html
import itertools
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._rpc import ResourceError

_VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
_MAX_PAGE_SIZE = 100
_DEFAULT_PAGE_SIZE = 10
_SNIPPET_CHARS = 160
_WORD = re.compile(r"\w+")
_PHRASE = re.compile(r'"([^"]*)"')
_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from how i in is it of on or the to was what "
    "when where which who why with you your"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class SearchDocument:
    """One document in the emulator's datastore: what search matches and quotes."""

    id: str
    title: str
    content: str
    link: str = ""


DEFAULT_DOCUMENTS: tuple[SearchDocument, ...] = (
    SearchDocument(
        "returns-policy",
        "Returns policy",
        "Laptops can be returned within 30 days of delivery for a full refund. "
        "Opened accessories can be returned within 14 days.",
        "gs://emulator-docs/returns-policy.pdf",
    ),
    SearchDocument(
        "warranty",
        "Warranty terms",
        "Every laptop carries a two-year warranty covering hardware faults. Accidental damage "
        "is not covered.",
        "gs://emulator-docs/warranty.pdf",
    ),
    SearchDocument(
        "shipping",
        "Shipping times",
        "Orders ship within 2 business days. Express delivery arrives the next business day.",
        "https://example.com/help/shipping",
    ),
)


def parse_search_path(parts: Sequence[str]) -> tuple[str, str, str] | None:
    """``(project, location, datastore)`` for a ``:search`` path split on "/"; else None."""
    if len(parts) != 11 or parts[0] not in _VERSIONS:
        return None
    keys = (parts[1], parts[3], parts[5], parts[7], parts[9])
    if keys != ("projects", "locations", "collections", "dataStores", "servingConfigs"):
        return None
    serving, _, method = parts[10].partition(":")
    if not serving or method != "search":
        return None
    return parts[2], parts[4], "/".join(parts[1:9])


def _normalise_quotes(text: str) -> str:
    return text.replace("“", '"').replace("”", '"').replace("＂", '"')


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


class SearchIndex:
    """The documents per datastore (``None``: every datastore without its own set)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._documents: dict[str | None, tuple[SearchDocument, ...]] = {}
        self._serial = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._documents = {None: DEFAULT_DOCUMENTS}

    def set_documents(
        self, documents: Iterable[SearchDocument | Mapping[str, str]], datastore: str | None
    ) -> None:
        docs = []
        for number, doc in enumerate(documents, 1):
            if isinstance(doc, SearchDocument):
                docs.append(doc)
            else:
                docs.append(
                    SearchDocument(
                        id=str(doc.get("id") or f"doc-{number}"),
                        title=str(doc.get("title", "")),
                        content=str(doc.get("content", "")),
                        link=str(doc.get("link", "")),
                    )
                )
        with self._lock:
            self._documents[datastore] = tuple(docs)

    def documents(self, datastore: str) -> tuple[SearchDocument, ...]:
        with self._lock:
            return self._documents.get(datastore, self._documents.get(None, ()))

    def search(self, datastore: str, body: Any) -> dict[str, Any]:
        """The JSON answer to a ``:search`` request body (``ResourceError`` when invalid)."""
        if not isinstance(body, dict):
            raise ResourceError(400, "The request body must be a JSON object.")
        query = body.get("query", "")
        if not isinstance(query, str):
            raise ResourceError(400, "Invalid value at 'query': expected a string.")
        page_size = body.get("pageSize", body.get("page_size", _DEFAULT_PAGE_SIZE))
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 0:
            raise ResourceError(400, f"pageSize must be a non-negative integer, got {page_size!r}.")
        page_size = min(page_size or _DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE)

        query = _normalise_quotes(query)
        phrases = [" ".join(p.lower().split()) for p in _PHRASE.findall(query) if p.strip()]
        rest = _PHRASE.sub(" ", query)
        literal = [t.lower().strip(".,;:!?()") for t in rest.split() if '"' in t]
        terms = _words(rest.replace('"', " ")) - _STOPWORDS
        terms -= {w for t in literal for w in _words(t)}
        scored = []
        for order, doc in enumerate(self.documents(datastore)):
            text = " ".join(f"{doc.title} {doc.content}".lower().split())
            if not all(p in text for p in phrases) or not all(t in text for t in literal):
                continue
            score = len(terms & _words(text)) + len(phrases) + len(literal)
            if score:
                scored.append((-score, order, doc))
        scored.sort(key=lambda item: (item[0], item[1]))
        matched = [doc for _, _, doc in scored]
        answer: dict[str, Any] = {
            "totalSize": len(matched),
            "attributionToken": f"emu-attribution-{next(self._serial)}",
        }
        highlight = terms | {w for p in phrases for w in _words(p)}
        if matched:
            answer["results"] = [_result(datastore, doc, highlight) for doc in matched[:page_size]]
        return answer


def _result(datastore: str, doc: SearchDocument, highlight: set[str]) -> dict[str, Any]:
    derived: dict[str, Any] = {
        "title": doc.title,
        "snippets": [{"snippet": _snippet(doc.content, highlight), "snippet_status": "SUCCESS"}],
    }
    if doc.link:
        derived["link"] = doc.link
    return {
        "id": doc.id,
        "document": {
            "name": f"{datastore}/branches/0/documents/{doc.id}",
            "id": doc.id,
            "derivedStructData": derived,
        },
    }


def _snippet(content: str, highlight: set[str]) -> str:
    """HTML as the real service sends it: escaped text, matched words in ``<b>``, ``&nbsp;...``."""
    cut = content[:_SNIPPET_CHARS]
    truncated = len(content) > _SNIPPET_CHARS

    def mark(match: re.Match[str]) -> str:
        word = html.escape(match.group(0), quote=True)
        return f"<b>{word}</b>" if match.group(0).lower() in highlight else word

    pieces = []
    position = 0
    for match in _WORD.finditer(cut):
        pieces.append(html.escape(cut[position : match.start()], quote=True))
        pieces.append(mark(match))
        position = match.end()
    pieces.append(html.escape(cut[position:], quote=True))
    return "".join(pieces) + ("&nbsp;..." if truncated else "")
