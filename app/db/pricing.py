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
    cached_text_in: Decimal = Decimal("0.40")
    cached_audio_in: Decimal = Decimal("0.40")


FULL = ModelPrices(text_in=Decimal(4), text_out=Decimal(16), audio_in=Decimal(32), audio_out=Decimal(64))
MINI = ModelPrices(
    text_in=Decimal("0.60"),
    text_out=Decimal("2.40"),
    audio_in=Decimal(10),
    audio_out=Decimal(20),
    cached_text_in=Decimal("0.06"),
    cached_audio_in=Decimal("0.30"),
)
REALTIME_2 = ModelPrices(
    text_in=Decimal(4), text_out=Decimal(24), audio_in=Decimal(32), audio_out=Decimal(64)
)
# Input transcription, billed apart from the Realtime model: (audio in, text out) per 1M tokens, and per
# minute when the server reports a duration instead of tokens.
TRANSCRIPTION_TOKEN_PRICES = {
    "gpt-4o-mini-transcribe": (Decimal(3), Decimal(5)),
    "gpt-4o-transcribe": (Decimal(6), Decimal(10)),
}
TRANSCRIPTION_PER_MINUTE = Decimal("0.006")
# Chat models that write the post-call summary: (input, output) per 1M tokens.
SUMMARY_PRICES = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal(10)),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
}
MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.00001")


def prices_for(model: str) -> ModelPrices:
    """The price row for a Realtime model name; mini models share one row, full models another."""
    name = model.lower()
    if "mini" in name:
        return MINI
    if name.startswith("gpt-realtime-2") and not name.startswith("gpt-realtime-2025"):
        return REALTIME_2
    return FULL


def _tokens(usage: Mapping[str, int], key: str) -> Decimal:
    value = usage.get(key, 0)
    return Decimal(int(value)) if isinstance(value, int) else Decimal(0)


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT_FRACTION, rounding=ROUND_HALF_UP)


def cost_breakdown(
    model: str, audio_in_seconds: float, audio_out_seconds: float, usage: Mapping[str, int] | None = None
) -> dict[str, Decimal]:
    """A segment's cost in USD by part: `audio_in`, `audio_out`, `text` and `transcription`.

    With the per-kind token counts the relay sums from `response.done` (`input_audio_tokens`, ...), each
    kind is priced at its own rate, cached input at the cached rate; without them, the estimate below."""
    usage = usage or {}
    parts = {"transcription": _round(transcription_cost_usd(usage))}
    if "output_audio_tokens" not in usage:
        estimate = estimate_cost_usd(model, audio_in_seconds, audio_out_seconds, usage)
        return {"model": estimate} | parts
    prices = prices_for(model)
    cached_audio = _tokens(usage, "input_cached_audio_tokens")
    cached_text = _tokens(usage, "input_cached_text_tokens")
    audio_in = (
        max(_tokens(usage, "input_audio_tokens") - cached_audio, Decimal(0)) * prices.audio_in
        + cached_audio * prices.cached_audio_in
    )
    text = (
        max(_tokens(usage, "input_text_tokens") - cached_text, Decimal(0)) * prices.text_in
        + cached_text * prices.cached_text_in
        + _tokens(usage, "output_text_tokens") * prices.text_out
    )
    audio_out = _tokens(usage, "output_audio_tokens") * prices.audio_out
    return {
        "audio_in": _round(audio_in / MILLION),
        "audio_out": _round(audio_out / MILLION),
        "text": _round(text / MILLION),
    } | parts


def transcription_cost_usd(usage: Mapping[str, int], model: str = "gpt-4o-mini-transcribe") -> Decimal:
    """Caller transcription, from the token or duration usage its events reported (`transcription_*`),
    at `model`'s rates (the default transcription model's when the relay did not say)."""
    audio_price, text_price = TRANSCRIPTION_TOKEN_PRICES.get(
        model, TRANSCRIPTION_TOKEN_PRICES["gpt-4o-transcribe"]
    )
    tokens = (
        _tokens(usage, "transcription_input_tokens") * audio_price
        + _tokens(usage, "transcription_output_tokens") * text_price
    ) / MILLION
    minutes = _tokens(usage, "transcription_ms") / Decimal(60_000)
    return tokens + minutes * TRANSCRIPTION_PER_MINUTE


def summary_cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """What writing the summary cost (unknown models at gpt-4o rates, so the figure never understates)."""
    price_in, price_out = SUMMARY_PRICES.get(model, SUMMARY_PRICES["gpt-4o"])
    return _round((Decimal(prompt_tokens) * price_in + Decimal(completion_tokens) * price_out) / MILLION)


def estimate_cost_usd(
    model: str, audio_in_seconds: float, audio_out_seconds: float, usage: Mapping[str, int] | None = None
) -> Decimal:
    """The call's estimated model cost from audio seconds and token totals, rounded to 1/100000 USD."""
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
    ) / MILLION
    return _round(total)
