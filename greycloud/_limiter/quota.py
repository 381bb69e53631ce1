"""The limits of one model as quota dimensions, and which tokens of a response count.

Requests per minute, tokens per minute and (optionally) requests per day each become a
``Dimension``. The token dimension's slack (see ``gcra``) is a small share of the quota:
requests up to that size cost exactly their tokens; larger ones occupy a longer slot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from google.genai import types

from ..errors import ConfigError
from .gcra import Dimension

MINUTE = 60.0
DAY = 86_400.0
TokenCounting = Literal["input", "total"]
LIMIT_KEYS = ("rpm", "tpm", "rpd", "max_concurrency")


@dataclass(frozen=True)
class Quota:
    """The limits that apply to one model."""

    rpm: int
    tpm: int
    max_concurrency: int
    rpd: int | None = None

    def dimensions(self, token_slack: float) -> tuple[Dimension, ...]:
        """Requests, tokens and, when set, requests per day (in that order)."""
        token_slack_units = min(self.tpm, max(1, math.ceil(token_slack * self.tpm)))
        dims: tuple[Dimension, ...] = (
            Dimension("requests", self.rpm, MINUTE, slack=1),
            Dimension("tokens", self.tpm, MINUTE, slack=token_slack_units),
        )
        if self.rpd is not None:
            # Half the day's quota may go at once; the rest is spread over the day.
            dims += (Dimension("requests_per_day", self.rpd, DAY, slack=1, burst=DAY),)
        return dims

    def scaled(self, share: float) -> Quota:
        """This quota times ``share`` (at least one of everything), for a local fallback."""
        return Quota(
            rpm=max(1, math.floor(self.rpm * share)),
            tpm=max(1, math.floor(self.tpm * share)),
            max_concurrency=max(1, math.floor(self.max_concurrency * share)),
            rpd=None if self.rpd is None else max(1, math.floor(self.rpd * share)),
        )


def _positive(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(field, f"must be a positive integer, got {value!r}")
    return value


def build_quotas(
    rpm: int,
    tpm: int,
    max_concurrency: int,
    model_limits: Mapping[str, Mapping[str, int]] | None,
) -> tuple[Quota, dict[str, Quota]]:
    """The default quota and the per-model overrides, validated."""
    default = Quota(
        _positive("rpm", rpm), _positive("tpm", tpm), _positive("max_concurrency", max_concurrency)
    )
    overrides: dict[str, Quota] = {}
    for model, limits in (model_limits or {}).items():
        unknown = set(limits) - set(LIMIT_KEYS)
        if unknown:
            raise ConfigError(
                "model_limits",
                f"unknown limit {sorted(unknown)[0]!r} for model {model!r}; "
                "use rpm, tpm, rpd or max_concurrency",
            )
        merged = {"rpm": rpm, "tpm": tpm, "max_concurrency": max_concurrency, **limits}
        for key, value in merged.items():
            _positive(f"model_limits.{model}.{key}", value)
        overrides[model] = Quota(
            merged["rpm"], merged["tpm"], merged["max_concurrency"], merged.get("rpd")
        )
    return default, overrides


def prompt_details(
    usage: types.GenerateContentResponseUsageMetadata | None,
) -> dict[str, int] | None:
    """The prompt tokens by modality (TEXT, IMAGE, ...) a response reported; None if it did not."""
    if usage is None or not usage.prompt_tokens_details:
        return None
    details: dict[str, int] = {}
    for entry in usage.prompt_tokens_details:
        if entry.modality is None or entry.token_count is None:
            continue
        modality = str(getattr(entry.modality, "value", entry.modality))
        details[modality] = details.get(modality, 0) + entry.token_count
    return details or None


def counted_tokens(
    usage: types.GenerateContentResponseUsageMetadata | None, counting: TokenCounting
) -> int | None:
    """The tokens the quota counts for a response; None when the response did not say."""
    if usage is None:
        return None
    if counting == "input":
        return usage.prompt_token_count
    if usage.total_token_count is not None:
        return usage.total_token_count
    parts = (
        usage.prompt_token_count,
        usage.candidates_token_count,
        usage.thoughts_token_count,
        usage.tool_use_prompt_token_count,
    )
    if all(part is None for part in parts):
        return None
    return sum(part or 0 for part in parts)
