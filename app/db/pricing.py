"""What a call cost in model usage, estimated from audio seconds and token counts (USD).

Prices per 1M tokens come from the Realtime model pages (see shared PROTOCOLS.md A9; re-check before
quoting). Audio is tokenised at 10 tokens/s for caller audio and 20 tokens/s for agent audio. When the relay
reports token totals, input tokens beyond the fresh caller audio are the conversation re-read every
response; their split between text/audio and cached/fresh is unknown, so they are priced at the uncached
*text* input rate, which sits between the cached and fresh audio rates. It is an estimate: the raw `usage`
is stored next to it so it can be recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CALLER_AUDIO_TOKENS_PER_SECOND = 10
AGENT_AUDIO_TOKENS_PER_SECOND = 20


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """USD per one million tokens."""

    text_in: Decimal
    text_out: Decimal
    audio_in: Decimal
    audio_out: Decimal


FULL = ModelPrices(text_in=Decimal(4), text_out=Decimal(16), audio_in=Decimal(32), audio_out=Decimal(64))
MINI = ModelPrices(
    text_in=Decimal("0.60"), text_out=Decimal("2.40"), audio_in=Decimal(10), audio_out=Decimal(20)
)
REALTIME_2 = ModelPrices(
    text_in=Decimal(4), text_out=Decimal(24), audio_in=Decimal(32), audio_out=Decimal(64)
)


def prices_for(model: str) -> ModelPrices:
    """The price row for a Realtime model name; mini models share one row, full models another."""
    name = model.lower()
    if "mini" in name:
        return MINI
    if name.startswith("gpt-realtime-2") and not name.startswith("gpt-realtime-2025"):
        return REALTIME_2
    return FULL


def estimate_cost_usd(
    model: str, audio_in_seconds: float, audio_out_seconds: float, usage: Mapping[str, int] | None = None
) -> Decimal:
    """The call's estimated model cost, rounded to 1/100000 USD."""
    prices = prices_for(model)
    audio_in_tokens = Decimal(str(max(audio_in_seconds, 0.0))) * CALLER_AUDIO_TOKENS_PER_SECOND
    audio_out_tokens = Decimal(str(max(audio_out_seconds, 0.0))) * AGENT_AUDIO_TOKENS_PER_SECOND
    extra_in = Decimal(0)
    extra_out = Decimal(0)
    if usage:
        input_tokens = Decimal(int(usage.get("input_tokens", 0)))
        output_tokens = Decimal(int(usage.get("output_tokens", 0)))
        audio_in_tokens = min(audio_in_tokens, input_tokens) if input_tokens else audio_in_tokens
        audio_out_tokens = min(audio_out_tokens, output_tokens) if output_tokens else audio_out_tokens
        extra_in = max(input_tokens - audio_in_tokens, Decimal(0))
        extra_out = max(output_tokens - audio_out_tokens, Decimal(0))
    total = (
        audio_in_tokens * prices.audio_in
        + audio_out_tokens * prices.audio_out
        + extra_in * prices.text_in
        + extra_out * prices.text_out
    ) / Decimal(1_000_000)
    return total.quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)
