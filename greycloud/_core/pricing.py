"""Estimated cost of tokens: the pricing table shipped with greycloud, and files that override it.

The table (``pricing.json`` beside this module) gives, per model, USD per million tokens for
``input``, ``cached_input``, ``output`` (thinking tokens are billed as output), optionally
``audio_input``, and ``batch_input`` / ``batch_output`` where batch jobs cost less, with the
``source`` page of each price and the date it was ``checked``. A file in the same shape (only
``models`` is needed, and only the models and fields that differ) overrides it: pass its path,
or set ``GREYCLOUD_PRICING``. A model is matched by its name, else by the longest table name
its name starts with (``gemini-2.5-flash-001`` is priced as ``gemini-2.5-flash``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from math import inf
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .usage import BATCH, TokenUsage, UsageMeter

PRICING_ENV = "GREYCLOUD_PRICING"
PER_TOKENS = 1_000_000
_PRICE_FIELDS = ("input", "cached_input", "output", "audio_input", "batch_input", "batch_output")


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for one model (None: the table has no such price)."""

    input: float
    output: float
    cached_input: float | None = None
    audio_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    source: str = ""
    checked: str = ""

    def cost(self, usage: TokenUsage, *, batch: bool = False) -> float:
        """USD for ``usage``: fresh input, cached input, output and thinking at their prices."""
        input_price = self.batch_input if batch and self.batch_input is not None else self.input
        output_price = self.batch_output if batch and self.batch_output is not None else self.output
        cached = min(usage.cached, usage.input)
        fresh = usage.input - cached
        audio = min(fresh, usage.input_by_modality.get("AUDIO", 0)) if self.audio_input else 0
        audio_price = self.audio_input or 0.0
        if batch and self.batch_input is not None and self.input:
            audio_price *= self.batch_input / self.input  # batch discounts every modality alike
        cached_price = self.cached_input if self.cached_input is not None else input_price
        dollars = (
            (fresh - audio) * input_price
            + audio * audio_price
            + cached * cached_price
            + (usage.output + usage.thinking) * output_price
        )
        return dollars / PER_TOKENS


@dataclass(frozen=True)
class CostEstimate:
    """What ``Pricing.estimate`` returns: USD in total and per model, and unpriced models."""

    total: float
    by_model: Mapping[str, float]
    unpriced: tuple[str, ...]
    """Models with tokens but no price in the table (left out of the total)."""


class Pricing:
    """A pricing table: the shipped one, optionally overridden by a file."""

    def __init__(self, models: Mapping[str, ModelPrice], currency: str = "USD") -> None:
        self.models = dict(models)
        self.currency = currency

    @classmethod
    def load(cls, path: str | Path | None = None) -> Pricing:
        """The shipped table, overridden by ``path`` (or else by the file ``GREYCLOUD_PRICING``
        names, when set)."""
        shipped = resources.files(__package__).joinpath("pricing.json").read_text()
        table = _models(json.loads(shipped), "the shipped pricing table")
        override = path if path is not None else os.environ.get(PRICING_ENV) or None
        if override is not None:
            for name, fields in _models(_read(Path(override)), str(override)).items():
                table[name] = {**table.get(name, {}), **fields}
        return cls({name: _price(name, fields) for name, fields in table.items()})

    def price_for(self, model: str) -> ModelPrice | None:
        """The model's price, by its name or the longest table name it starts with."""
        name = model.rsplit("/", 1)[-1]  # "publishers/google/models/gemini-..." or "models/..."
        if name in self.models:
            return self.models[name]
        prefixes = [known for known in self.models if name.startswith(known)]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def estimate(self, meter: UsageMeter) -> CostEstimate:
        """The estimated cost of every token ``meter`` counted."""
        by_model: dict[str, float] = {}
        unpriced: set[str] = set()
        for (model, mode), usage in meter.entries().items():
            price = self.price_for(model)
            if price is None:
                unpriced.add(model)
                continue
            by_model[model] = by_model.get(model, 0.0) + price.cost(usage, batch=mode == BATCH)
        return CostEstimate(sum(by_model.values()), by_model, tuple(sorted(unpriced)))


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("pricing", f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("pricing", f"{path} is not UTF-8 text (a JSON file is)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError("pricing", f"{path} is not JSON: {exc}") from None


def _models(document: Any, where: str) -> dict[str, dict[str, Any]]:
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise ConfigError(
            "pricing",
            f'{where} needs {{"models": {{"<model>": {{"input": ..., "output": ...}}}}}} '
            "with prices in USD per million tokens",
        )
    return {str(name): dict(fields) for name, fields in models.items()}


def _price(model: str, fields: Mapping[str, Any]) -> ModelPrice:
    prices: dict[str, float] = {}
    for key in _PRICE_FIELDS:
        value = fields.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < inf:
            raise ConfigError(
                "pricing", f"{model}.{key} must be a price of 0 or more, got {value!r}"
            )
        prices[key] = float(value)
    missing = [key for key in ("input", "output") if key not in prices]
    if missing:
        raise ConfigError("pricing", f"{model} has no {' or '.join(missing)} price")
    return ModelPrice(
        input=prices["input"],
        output=prices["output"],
        cached_input=prices.get("cached_input"),
        audio_input=prices.get("audio_input"),
        batch_input=prices.get("batch_input"),
        batch_output=prices.get("batch_output"),
        source=str(fields.get("source", "")),
        checked=str(fields.get("checked", "")),
    )
