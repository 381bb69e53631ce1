"""The pricing table and cost estimates (pure: no server needed)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from greycloud import ConfigError, Pricing, UsageMeter
from greycloud._core.pricing import PRICING_ENV


def usage(prompt: int, output: int, *, cached: int = 0, thinking: int = 0, audio: int = 0) -> Any:
    details = [SimpleNamespace(modality="TEXT", token_count=prompt - audio)]
    if audio:
        details.append(SimpleNamespace(modality="AUDIO", token_count=audio))
    return SimpleNamespace(
        prompt_token_count=prompt,
        candidates_token_count=output,
        cached_content_token_count=cached,
        thoughts_token_count=thinking,
        prompt_tokens_details=details,
    )


def test_every_shipped_price_names_its_source_and_date() -> None:
    pricing = Pricing.load()
    assert "gemini-2.5-flash" in pricing.models
    for name, price in pricing.models.items():
        assert price.source.startswith("https://"), name
        assert len(price.checked) == len("2026-01-01"), name
        assert price.batch_input is None or price.batch_input < price.input, name


def test_cost_counts_each_kind_of_token_at_its_price() -> None:
    pricing = Pricing.load()
    price = pricing.models["gemini-2.5-flash"]
    meter = UsageMeter()
    meter.add("gemini-2.5-flash", usage(1_000_000, 100_000, cached=200_000, thinking=50_000))
    expected = (
        800_000 * price.input + 200_000 * (price.cached_input or 0) + 150_000 * price.output
    ) / 1_000_000
    estimate = pricing.estimate(meter)
    assert estimate.total == pytest.approx(expected)
    assert estimate.by_model == {"gemini-2.5-flash": pytest.approx(expected)}
    assert estimate.unpriced == ()


def test_audio_input_and_batch_jobs_have_their_own_prices() -> None:
    pricing = Pricing.load()
    price = pricing.models["gemini-2.5-flash"]
    assert price.audio_input is not None and price.batch_input is not None
    online, batch = UsageMeter(), UsageMeter()
    online.add("gemini-2.5-flash", usage(1_000_000, 0, audio=400_000))
    batch.add("gemini-2.5-flash", usage(1_000_000, 1_000_000), mode="batch")
    assert pricing.estimate(online).total == pytest.approx(
        0.6 * price.input + 0.4 * price.audio_input
    )
    assert pricing.estimate(batch).total == pytest.approx(
        price.batch_input + (price.batch_output or 0)
    )


def test_versioned_names_use_the_longest_matching_entry() -> None:
    pricing = Pricing.load()
    assert pricing.price_for("gemini-2.5-flash-lite-001") == pricing.models["gemini-2.5-flash-lite"]
    assert (
        pricing.price_for("publishers/google/models/gemini-2.5-pro")
        == pricing.models["gemini-2.5-pro"]
    )
    meter = UsageMeter()
    meter.add("my-tuned-model", usage(10, 10))
    assert pricing.estimate(meter).unpriced == ("my-tuned-model",)
    assert pricing.estimate(meter).total == 0


def test_a_file_overrides_some_prices_and_adds_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {"models": {"gemini-2.5-flash": {"input": 9.0}, "my-model": {"input": 1, "output": 2}}}
        )
    )
    shipped = Pricing.load().models["gemini-2.5-flash"]
    for pricing in (Pricing.load(path), _from_env(monkeypatch, path)):
        assert pricing.models["gemini-2.5-flash"].input == 9.0
        assert pricing.models["gemini-2.5-flash"].output == shipped.output
        assert pricing.models["my-model"].output == 2.0


def _from_env(monkeypatch: pytest.MonkeyPatch, path: Path) -> Pricing:
    monkeypatch.setenv(PRICING_ENV, str(path))
    return Pricing.load()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"prices": {}}', '"models"'),
        ('{"models": {"m": {"input": -1, "output": 1}}}', "m.input must be a price"),
        ('{"models": {"m": {"input": 1}}}', "m has no output price"),
        ('{"models": {"m": {"input": NaN, "output": 1}}}', "m.input must be a price"),
        ('{"models": {"m": {"input": 1, "output": Infinity}}}', "m.output must be a price"),
    ],
)
def test_a_bad_pricing_file_says_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        Pricing.load(path)


def test_a_pricing_file_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="not UTF-8"):
        Pricing.load(path)


def test_a_missing_pricing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Pricing.load(tmp_path / "nope.json")
