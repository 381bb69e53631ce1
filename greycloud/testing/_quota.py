"""Rolling 60-second request and input-token windows, one per (project, model).

Vertex AI counts requests per minute and *input* tokens per minute per project and base model.
Each window keeps the admitted requests of the last 60 seconds as ``(time, tokens)`` pairs with
running sums, so checking and booking a request is O(1) amortised. A refused request is not
booked (Vertex does not count a 429 against the quota). The window also remembers the highest
request and token counts it ever held, which :meth:`VertexEmulator.stats` reports.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ._rpc import REQUESTS_QUOTA_ID, TOKENS_QUOTA_ID

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Limits:
    """Requests and input tokens per minute; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a request did not fit: which quota, and how long until it would."""

    quota_id: str
    retry_delay: float
    message: str


class RollingWindow:
    """Requests and tokens admitted in the last 60 seconds for one (project, model)."""

    __slots__ = ("_entries", "peak_requests", "peak_tokens", "tokens")

    def __init__(self) -> None:
        self._entries: deque[tuple[float, int]] = deque()
        self.tokens = 0
        self.peak_requests = 0
        self.peak_tokens = 0

    @property
    def requests(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        horizon = now - WINDOW_SECONDS
        while entries and entries[0][0] <= horizon:
            self.tokens -= entries.popleft()[1]

    def try_admit(self, now: float, tokens: int, limits: Limits) -> Refusal | None:
        """Book the request and return None, or return why it does not fit (booking nothing)."""
        self._expire(now)
        entries = self._entries
        if limits.rpm is not None and len(entries) + 1 > limits.rpm:
            # The oldest (len - rpm + 1) entries must leave the window first.
            oldest_needed = entries[len(entries) - limits.rpm] if limits.rpm > 0 else None
            delay = oldest_needed[0] + WINDOW_SECONDS - now if oldest_needed else WINDOW_SECONDS
            return Refusal(
                REQUESTS_QUOTA_ID,
                delay,
                f"Quota exceeded for requests per minute: {limits.rpm} per minute per project "
                "per model. Please retry later.",
            )
        if limits.tpm is not None and self.tokens + tokens > limits.tpm:
            return Refusal(
                TOKENS_QUOTA_ID,
                self._token_delay(now, tokens, limits.tpm),
                f"Quota exceeded for input tokens per minute: {limits.tpm} per minute per "
                f"project per model (this request needs {tokens}). Please retry later.",
            )
        entries.append((now, tokens))
        self.tokens += tokens
        self.peak_requests = max(self.peak_requests, len(entries))
        self.peak_tokens = max(self.peak_tokens, self.tokens)
        return None

    def _token_delay(self, now: float, tokens: int, tpm: int) -> float:
        if tokens > tpm:
            # Can never fit; a full window is the honest "later".
            return WINDOW_SECONDS
        excess = self.tokens + tokens - tpm
        for stamp, booked in self._entries:
            excess -= booked
            if excess <= 0:
                return stamp + WINDOW_SECONDS - now
        return WINDOW_SECONDS  # unreachable: the entries sum to self.tokens


class QuotaBook:
    """All windows plus the quotas that apply to them (defaults with per-model overrides)."""

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        model_quotas: dict[str, dict[str, int | None]] | None = None,
    ) -> None:
        self._default: dict[str, int | None] = {"rpm": rpm, "tpm": tpm}
        # Per-model overrides stay partial, so a later change of the default still applies
        # to the quota a model did not override.
        self._overrides: dict[str, dict[str, int | None]] = {}
        self._resolved: dict[str, Limits] = {}
        self.windows: dict[tuple[str, str], RollingWindow] = {}
        for model, quota in (model_quotas or {}).items():
            self.set(model=model, **quota)

    def set(self, *, model: str | None = None, **quota: int | None) -> None:
        """Change rpm and/or tpm for every model (``model=None``) or for one model."""
        unknown = set(quota) - {"rpm", "tpm"}
        if unknown:
            raise ValueError(f"unknown quota {sorted(unknown)}; use rpm and tpm")
        for name, value in quota.items():
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
        target = self._default if model is None else self._overrides.setdefault(model, {})
        target.update(quota)
        self._resolved.clear()

    def limits_for(self, model: str) -> Limits:
        limits = self._resolved.get(model)
        if limits is None:
            merged = {**self._default, **self._overrides.get(model, {})}
            limits = self._resolved[model] = Limits(merged["rpm"], merged["tpm"])
        return limits

    def try_admit(self, project: str, model: str, now: float, tokens: int) -> Refusal | None:
        key = (project, model)
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = RollingWindow()
        return window.try_admit(now, tokens, self.limits_for(model))

    def clear(self) -> None:
        self.windows.clear()
