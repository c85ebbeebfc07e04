"""Cost estimates from audio seconds and token totals (PROTOCOLS.md A9 prices)."""

from __future__ import annotations

from decimal import Decimal

from app.db.pricing import MINI, estimate_cost_usd, prices_for


def test_mini_and_full_models_use_their_own_price_rows() -> None:
    assert prices_for("gpt-realtime-mini") is MINI
    assert prices_for("gpt-realtime-2.1-mini") is MINI
    assert prices_for("gpt-realtime").audio_out == Decimal(64)
    assert prices_for("gpt-realtime-2").text_out == Decimal(24)


def test_a_minute_each_way_on_mini_costs_what_the_price_sheet_says() -> None:
    # 60 s caller audio = 600 tokens at $10/M; 60 s agent audio = 1200 tokens at $20/M.
    assert estimate_cost_usd("gpt-realtime-mini", 60, 60) == Decimal("0.03000")
    # The full model is 3.2x the price.
    assert estimate_cost_usd("gpt-realtime", 60, 60) == Decimal("0.09600")


def test_reported_tokens_beyond_fresh_audio_are_charged_as_context() -> None:
    base = estimate_cost_usd("gpt-realtime-mini", 10, 10)
    with_context = estimate_cost_usd(
        "gpt-realtime-mini", 10, 10, {"input_tokens": 10_100, "output_tokens": 200}
    )
    # 10 000 re-read input tokens at the $0.60/M text rate on top of the audio.
    assert with_context - base == Decimal("0.00600")
    assert estimate_cost_usd("gpt-realtime-mini", 0, 0) == Decimal("0.00000")
