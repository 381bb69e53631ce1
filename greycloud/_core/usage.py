"""Tokens spent, by kind: what a ``UsageMeter`` adds up from the responses' ``usage_metadata``.

Kinds as Gemini reports them: ``input`` (the whole prompt, cached tokens included), ``cached``
(the part of the input served from a context cache), ``output`` (the answer) and ``thinking``
(thought tokens, billed as output). Input tokens by modality come from
``prompt_tokens_details`` when the service sends them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.genai import types

from .._limiter.quota import prompt_details

ONLINE = "online"
BATCH = "batch"


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of each kind over some responses (``a + b`` adds two of them)."""

    responses: int = 0
    input: int = 0
    """Prompt tokens, cached ones included."""
    cached: int = 0
    output: int = 0
    thinking: int = 0
    input_by_modality: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Input tokens per modality ("TEXT", "IMAGE", "AUDIO", "VIDEO", "DOCUMENT"), when known."""

    @property
    def total(self) -> int:
        return self.input + self.output + self.thinking

    def __add__(self, other: TokenUsage) -> TokenUsage:
        modalities = dict(self.input_by_modality)
        for modality, tokens in other.input_by_modality.items():
            modalities[modality] = modalities.get(modality, 0) + tokens
        return TokenUsage(
            self.responses + other.responses,
            self.input + other.input,
            self.cached + other.cached,
            self.output + other.output,
            self.thinking + other.thinking,
            MappingProxyType(modalities),
        )


def usage_of(metadata: types.GenerateContentResponseUsageMetadata | None) -> TokenUsage | None:
    """The ``TokenUsage`` of one response's ``usage_metadata`` (None when it has none)."""
    if metadata is None:
        return None
    return TokenUsage(
        responses=1,
        input=metadata.prompt_token_count or 0,
        cached=metadata.cached_content_token_count or 0,
        output=metadata.candidates_token_count or 0,
        thinking=metadata.thoughts_token_count or 0,
        input_by_modality=MappingProxyType(prompt_details(metadata) or {}),
    )


class UsageMeter:
    """Adds up the tokens of every response a client received, per model (thread-safe).

    Every client has one (``client.usage``); pass the same meter to several clients to add up
    their tokens together. ``cost()`` turns the totals into an estimate with a pricing table.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], TokenUsage] = {}

    def add(
        self,
        model: str,
        usage_metadata: types.GenerateContentResponseUsageMetadata | None,
        *,
        mode: str = ONLINE,
    ) -> None:
        """Count one response's ``usage_metadata`` (None is ignored); ``mode`` is "online"
        or "batch" (batch jobs are priced apart)."""
        usage = usage_of(usage_metadata)
        if usage is not None:
            self.add_usage(model, usage, mode=mode)

    def add_usage(self, model: str, usage: TokenUsage, *, mode: str = ONLINE) -> None:
        """Count ``usage`` already added up (e.g. an embedding response's input tokens)."""
        key = (model, mode)
        with self._lock:
            seen = self._by_key.get(key)
            self._by_key[key] = usage if seen is None else seen + usage

    def by_model(self, mode: str | None = None) -> dict[str, TokenUsage]:
        """The tokens of each model (of one ``mode`` only, when given)."""
        with self._lock:
            items = list(self._by_key.items())
        result: dict[str, TokenUsage] = {}
        for (model, key_mode), usage in items:
            if mode is None or key_mode == mode:
                seen = result.get(model)
                result[model] = usage if seen is None else seen + usage
        return result

    def totals(self) -> TokenUsage:
        """The tokens of every model together."""
        total = TokenUsage()
        for usage in self.by_model().values():
            total = total + usage
        return total

    def entries(self) -> dict[tuple[str, str], TokenUsage]:
        """The tokens per (model, mode): what a cost estimate needs."""
        with self._lock:
            return dict(self._by_key)

    def reset(self) -> None:
        with self._lock:
            self._by_key.clear()
