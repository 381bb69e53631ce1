"""What ``limiter.stats()`` returns: a snapshot of waiting, in-flight and adaptation figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .discovery import RateChange


@dataclass(frozen=True)
class ModelStats:
    """One model's limiter state at the moment of the snapshot."""

    rpm: float
    """Requests per minute the limiter currently lets start (after any 429 slowdown)."""
    tpm: float
    """Tokens per minute the limiter currently lets start."""
    rate_factor: float
    """Share of the configured rate in use: 1.0, or less after 429s."""
    waiting: int
    in_flight: int
    rate_limited: int
    """429s reported for this model (per-minute ones; per-day ones are counted apart)."""
    rate_limited_per_day: int
    wait_seconds: float
    """Total time requests for this model spent waiting for their start."""
    calibration: Mapping[str, float] = field(default_factory=dict)
    """Real prompt tokens over estimated ones, per modality (TEXT, IMAGE, ...) seen so far."""
    auto: bool = False
    """Whether the request rate is discovered (``rpm="auto"``); ``rpm`` is then its value now."""
    ceiling_estimate_rpm: float | None = None
    """rpm="auto": where the last 429 put the shared pool's edge (None before the first)."""
    history: tuple[RateChange, ...] = ()
    """rpm="auto": the recent changes of the discovered rate (requests per second), oldest first."""


@dataclass(frozen=True)
class LimiterStats:
    """Totals over all models, plus each model's figures in ``models``."""

    waiting: int
    in_flight: int
    rate_limited: int
    wait_seconds: float
    storage: str
    """"memory", "redis", or "local fallback" while Redis is unreachable."""
    models: Mapping[str, ModelStats]
