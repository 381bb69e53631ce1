"""Calibration of token estimates per modality: what a booking costs, and learning from usage.

A request's estimate comes by modality (``TokenEstimate``). Each modality of a model keeps its
own ratio of real usage to estimate, learned from the response's ``prompt_tokens_details``, so
an image call never moves the text estimate. Tokens the service counted itself (``countTokens``)
are booked as they are. Media of unknown size priced by the learned average teach that average
instead of a ratio. Without details, the response's total corrects every modality of the call
by the same factor (the old total-based correction, for that call only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

TEXT = "TEXT"  # the modality of a bare token count
WEIGHT = 0.1  # weight of each response in the running means
MIN_RATIO, MAX_RATIO = 0.2, 5.0


@dataclass(frozen=True)
class TokenEstimate:
    """A request's prompt tokens before the call, by modality (TEXT, IMAGE, AUDIO, ...).

    ``estimated``: worked out locally, scaled by calibration. ``fixed``: booked as they are
    (counted by the service, or a learned average). ``averaged``: how many media parts of each
    modality were priced by the learned average (their real size teaches it).
    """

    estimated: Mapping[str, int]
    fixed: Mapping[str, int] = field(default_factory=dict)
    averaged: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return max(1, sum(self.estimated.values()) + sum(self.fixed.values()))


class _Mean:
    """Running means of estimate and real usage; their ratio is the calibration."""

    __slots__ = ("actual", "estimate", "ratio")

    def __init__(self) -> None:
        self.estimate = 0.0
        self.actual = 0.0
        self.ratio = 1.0

    def add(self, estimate: float, actual: float) -> None:
        # The ratio of running means (not the mean of ratios, which random errors bias upwards).
        if self.estimate == 0.0:
            self.estimate, self.actual = estimate, actual
        else:
            self.estimate += WEIGHT * (estimate - self.estimate)
            self.actual += WEIGHT * (actual - self.actual)
        self.ratio = min(MAX_RATIO, max(MIN_RATIO, self.actual / self.estimate))


class Calibration:
    """One model's calibration: a ratio per modality and an average per media part."""

    __slots__ = ("_averages", "_means")

    def __init__(self) -> None:
        self._means: dict[str, _Mean] = {}
        self._averages: dict[str, float] = {}

    def ratio(self, modality: str) -> float:
        mean = self._means.get(modality)
        return 1.0 if mean is None else mean.ratio

    def ratios(self) -> dict[str, float]:
        return {modality: self._means[modality].ratio for modality in sorted(self._means)}

    def average(self, modality: str) -> float | None:
        """Tokens per media part of unknown size, as learned so far (None: nothing yet)."""
        return self._averages.get(modality)

    def cost(self, tokens: int, estimate: TokenEstimate | None) -> int:
        """The tokens to book: each modality's estimate times its ratio, plus the fixed ones."""
        if tokens <= 0:
            return tokens
        if estimate is None:
            return math.ceil(tokens * self.ratio(TEXT))
        scaled = sum(amount * self.ratio(m) for m, amount in estimate.estimated.items())
        return max(1, math.ceil(scaled + sum(estimate.fixed.values())))

    def learn(
        self,
        tokens: int,
        estimate: TokenEstimate | None,
        actual: int,
        details: Mapping[str, int] | None,
    ) -> None:
        """Learn from one response: ``actual`` tokens counted, ``details`` by modality if given.

        When ``actual`` is more than the details add up to (the quota counts output tokens
        too), the difference is spread over the modalities in proportion.
        """
        if actual < 0:
            return
        if estimate is None:
            if not details:  # a bare token count (the limiter used directly): text alone
                if tokens > 0:
                    self._mean(TEXT).add(tokens, actual)
                return
            estimate = TokenEstimate({TEXT: tokens})
        reported = sum(details.values()) if details else 0
        if reported > 0 and details is not None:
            scale = actual / reported
            for modality in set(estimate.estimated) | set(details) | set(estimate.fixed):
                self._learn_modality(modality, estimate, details.get(modality, 0) * scale)
            return
        # No details: correct every estimated modality by the call's total.
        fixed = sum(estimate.fixed.values())
        scaled = {m: amount * self.ratio(m) for m, amount in estimate.estimated.items()}
        booked = sum(scaled.values())
        if booked <= 0:
            return
        factor = max(0.0, actual - fixed) / booked
        for modality, amount in estimate.estimated.items():
            if amount > 0:
                self._mean(modality).add(amount, scaled[modality] * factor)

    def _learn_modality(self, modality: str, estimate: TokenEstimate, real: float) -> None:
        estimated = estimate.estimated.get(modality, 0)
        parts = estimate.averaged.get(modality, 0)
        if parts:
            # What the sized parts of this modality do not explain belongs to the averaged ones.
            residual = max(0.0, real - estimated * self.ratio(modality))
            self._add_average(modality, residual / parts)
            return
        real -= estimate.fixed.get(modality, 0)  # counted by the service: nothing to learn
        if estimated > 0:
            self._mean(modality).add(estimated, max(0.0, real))

    def _mean(self, modality: str) -> _Mean:
        mean = self._means.get(modality)
        if mean is None:
            mean = self._means[modality] = _Mean()
        return mean

    def _add_average(self, modality: str, tokens: float) -> None:
        seen = self._averages.get(modality)
        self._averages[modality] = tokens if seen is None else seen + WEIGHT * (tokens - seen)
