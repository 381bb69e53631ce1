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
from .discovery import DiscoverySettings
from .gcra import Dimension

MINUTE = 60.0
DAY = 86_400.0
TokenCounting = Literal["input", "total"]
LIMIT_KEYS = ("rpm", "tpm", "rpd", "max_concurrency", "auto_max", "auto_floor")
AUTO: Literal["auto"] = "auto"
Limit = int | Literal["auto"]
# rpm="auto": the discovered rate starts here (Google's advice: ramp up gradually), stays within
# [auto_floor, auto_max] requests per minute.
AUTO_START_RPM = 60
DEFAULT_AUTO_MAX = 60_000
DEFAULT_AUTO_FLOOR = 6
# tpm="auto": Dynamic Shared Quota has no token number and its 429 does not say which ran out, so
# the discovered request rate absorbs token pressure; the token dimension is then this large.
UNBOUNDED_TPM = 10**10


@dataclass(frozen=True)
class Quota:
    """The limits that apply to one model."""

    rpm: int
    tpm: int
    max_concurrency: int
    rpd: int | None = None
    auto: DiscoverySettings | None = None
    """Set for ``rpm="auto"``: the request rate is discovered (``rpm`` is then its ceiling)."""

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
            auto=None if self.auto is None else _scaled_settings(self.auto, share),
        )


def _scaled_settings(settings: DiscoverySettings, share: float) -> DiscoverySettings:
    floor = settings.floor * share
    return DiscoverySettings(
        start=max(floor, settings.start * share), floor=floor, ceiling=settings.ceiling * share
    )


def _positive(field: str, value: object, label: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(field, f"{label}must be a positive integer, got {value!r}")
    return value


def _limit(field: str, value: object, label: str) -> Limit:
    if value == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(field, f'{label}must be a positive integer or "auto", got {value!r}')
    return value


# Why there is no max_concurrency="auto" (see the README's "Which limits to set").
NO_AUTO_CONCURRENCY = (
    'cannot be "auto": a shared pool (Dynamic Shared Quota) limits the rate, which rpm="auto" '
    "discovers, not the calls in flight. Set how many calls may be in flight at once (with "
    "Redis storage: all processes together), at least the rate you expect times a call's "
    "latency (e.g. 40 requests/s x 5 s = 200), or the cap and not the pool will limit the rate"
)


def check_limits(limits: Mapping[str, object], model: str | None = None) -> None:
    """Validate the default limits, or (``model``) a model's overrides merged over them."""
    for key, value in limits.items():
        field = key if model is None else "model_limits"
        label = "" if model is None else f"{model}.{key} "
        if key == "max_concurrency" and value == AUTO:
            raise ConfigError(field, label + NO_AUTO_CONCURRENCY)
        if key in ("rpm", "tpm"):
            _limit(field, value, label)
        elif value is not None or key == "max_concurrency":
            _positive(field, value, label)
    floor, ceiling = limits.get("auto_floor"), limits.get("auto_max") or DEFAULT_AUTO_MAX
    if isinstance(floor, int) and isinstance(ceiling, int) and floor > ceiling:
        raise ConfigError(
            "auto_floor" if model is None else "model_limits",
            f"auto_floor ({floor}) must be at most auto_max ({ceiling}); lower the floor or "
            "raise auto_max",
        )


def _number(limits: Mapping[str, object], key: str, default: int) -> int:
    value = limits.get(key)
    return value if isinstance(value, int) else default


def make_quota(limits: Mapping[str, object]) -> Quota:
    """One model's ``Quota`` from validated limits (rpm/tpm may be "auto")."""
    auto = None
    rpm = _number(limits, "rpm", 0)
    if limits["rpm"] == AUTO:
        rpm = _number(limits, "auto_max", DEFAULT_AUTO_MAX)
        floor = _number(limits, "auto_floor", min(DEFAULT_AUTO_FLOOR, rpm))
        start = min(rpm, max(floor, AUTO_START_RPM))
        auto = DiscoverySettings(start=start / MINUTE, floor=floor / MINUTE, ceiling=rpm / MINUTE)
    rpd = limits.get("rpd")
    return Quota(
        rpm=rpm,
        tpm=_number(limits, "tpm", UNBOUNDED_TPM),
        max_concurrency=_number(limits, "max_concurrency", 0),
        rpd=rpd if isinstance(rpd, int) else None,
        auto=auto,
    )


def build_quotas(
    rpm: Limit,
    tpm: Limit,
    max_concurrency: int,
    model_limits: Mapping[str, Mapping[str, Limit]] | None,
    *,
    auto_max: int | None = None,
    auto_floor: int | None = None,
) -> tuple[Quota, dict[str, Quota]]:
    """The default quota and the per-model overrides, validated.

    ``rpm``/``tpm`` may be "auto" (see ``discovery``); ``auto_max`` and ``auto_floor`` bound a
    discovered request rate (requests per minute), per model too.
    """
    defaults: dict[str, object] = {
        "rpm": rpm,
        "tpm": tpm,
        "max_concurrency": max_concurrency,
        "auto_max": auto_max,
        "auto_floor": auto_floor,
    }
    check_limits(defaults)
    overrides: dict[str, Quota] = {}
    for model, limits in (model_limits or {}).items():
        unknown = set(limits) - set(LIMIT_KEYS)
        if unknown:
            raise ConfigError(
                "model_limits",
                f"unknown limit {sorted(unknown)[0]!r} for model {model!r}; "
                f"use {', '.join(LIMIT_KEYS)}",
            )
        merged = {**defaults, **limits}
        check_limits(merged, model)
        overrides[model] = make_quota(merged)
    return make_quota(defaults), overrides


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
