"""The relay's metrics: bounded labels from structured results, latency stamps observed once each, the
event-loop lag probe, cost from the pricing table, and the listener on its own port."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.calls.events import CallEnded
from app.calls.timings import CallTimings
from app.cli import main
from app.db.pricing import estimate_cost_usd
from app.functions.registry import Tool, ToolContext, ToolRegistry
from app.metrics import RelayMetrics
from app.metrics_live import watch_event_loop
from app.metrics_server import MetricsPortError, serve_metrics


def _value(metrics: RelayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def _ok(_args: dict[str, Any], _ctx: ToolContext) -> dict[str, Any]:
    return {"hours": "9-5", "note": "(failed) is just words here"}


async def _refused(_args: dict[str, Any], _ctx: ToolContext) -> dict[str, Any]:
    return {"error": {"code": "slot_taken", "message": "That time is taken."}}


async def _slow(_args: dict[str, Any], _ctx: ToolContext) -> dict[str, Any]:
    await asyncio.sleep(5)
    return {}


async def test_tool_calls_are_counted_by_tool_and_structured_result() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    registry = ToolRegistry(
        [
            Tool("lookup_hours", "hours", schema, _ok),
            Tool("book_appointment", "book", schema, _refused),
            Tool("check_availability", "slots", schema, _slow, timeout_seconds=0.05),
        ]
    )
    metrics = RelayMetrics()
    metrics.bind_labels(registry.names(), ["gpt-realtime-mini"])
    context = ToolContext(call_sid="CA1")
    for name in ("lookup_hours", "book_appointment", "check_availability", "no_such_tool"):
        outcome = await registry.invoke(name, "{}", context)
        metrics.tool_finished(
            name, ok=outcome.ok, error_code=outcome.error_code, seconds=outcome.latency_ms / 1000
        )

    assert _value(metrics, "voice_agent_tool_calls_total", tool="lookup_hours", result="ok") == 1
    assert _value(metrics, "voice_agent_tool_calls_total", tool="book_appointment", result="error") == 1
    assert _value(metrics, "voice_agent_tool_calls_total", tool="check_availability", result="timeout") == 1
    assert _value(metrics, "voice_agent_tool_calls_total", tool="unknown", result="error") == 1
    assert _value(metrics, "voice_agent_tool_seconds_sum", tool="check_availability") >= 0.05
    # Series for every registered tool and result exist from the start (at 0), none for made-up names.
    assert (
        metrics.registry.get_sample_value(
            "voice_agent_tool_calls_total", {"tool": "lookup_hours", "result": "timeout"}
        )
        == 0
    )
    assert (
        metrics.registry.get_sample_value(
            "voice_agent_tool_calls_total", {"tool": "no_such_tool", "result": "error"}
        )
        is None
    )


def test_model_failure_reasons_stay_within_a_fixed_vocabulary() -> None:
    metrics = RelayMetrics()
    for why in ("invalid_api_key", "http_401", "reconnect_failed:1006", "reconnect_failed:None", "surprise!"):
        metrics.model_failed(why)
    reasons = {
        sample.labels["reason"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "voice_agent_model_failures"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert reasons == {"invalid_api_key": 1, "http_401": 1, "reconnects_exhausted": 2, "other": 1}


def test_call_cost_is_the_pricing_estimate_by_configured_model() -> None:
    metrics = RelayMetrics()
    metrics.bind_labels([], ["gpt-realtime-mini", "gpt-realtime"])
    usage = {"input_tokens": 900, "output_tokens": 700}
    ended = CallEnded("CA1", time.time(), "caller_hung_up", 30.0, 25.0, usage)
    metrics.call_cost("gpt-realtime-mini", ended)
    metrics.call_cost("a-model-nobody-configured", ended)
    expected = float(estimate_cost_usd("gpt-realtime-mini", 30.0, 25.0, usage))
    assert expected > 0
    assert _value(
        metrics, "voice_agent_model_cost_dollars_total", model="gpt-realtime-mini"
    ) == pytest.approx(expected)
    other = float(estimate_cost_usd("a-model-nobody-configured", 30.0, 25.0, usage))
    assert _value(metrics, "voice_agent_model_cost_dollars_total", model="other") == pytest.approx(other)
    assert _value(metrics, "voice_agent_call_cost_dollars_count") == 2
    assert Decimal(str(expected)) == estimate_cost_usd("gpt-realtime-mini", 30.0, 25.0, usage)


def test_greeting_and_reply_latency_are_observed_once_each() -> None:
    metrics = RelayMetrics()
    timings = CallTimings(prepared_at=time.perf_counter())
    timings.audio_sent(160, metrics)  # greeting audio generated before the stream: no figure without a start
    assert _value(metrics, "voice_agent_greeting_seconds_count") == 0
    assert not timings.awaiting_audio

    timings = CallTimings(stream_started_at=time.perf_counter())
    time.sleep(0.01)
    timings.audio_sent(160, metrics)
    timings.audio_sent(160, metrics)
    assert _value(metrics, "voice_agent_greeting_seconds_count") == 1
    assert _value(metrics, "voice_agent_greeting_seconds_sum") >= 0.01
    assert not timings.awaiting_audio  # the audio path stops calling in

    timings.caller_speech_started()
    timings.caller_speech_stopped()
    assert timings.awaiting_audio
    time.sleep(0.02)
    timings.audio_sent(0, metrics)  # a closing mark is not the reply's audio
    assert _value(metrics, "voice_agent_reply_first_audio_seconds_count") == 0
    timings.audio_sent(160, metrics)
    timings.audio_sent(160, metrics)
    assert _value(metrics, "voice_agent_reply_first_audio_seconds_count") == 1
    assert _value(metrics, "voice_agent_reply_first_audio_seconds_sum") >= 0.02

    timings.caller_speech_stopped()
    timings.caller_speech_started()  # they went on talking: no reply is awaited yet
    timings.audio_sent(160, metrics)
    assert _value(metrics, "voice_agent_reply_first_audio_seconds_count") == 1


def test_barge_in_reaction_is_observed_in_seconds() -> None:
    metrics = RelayMetrics()
    timings = CallTimings()
    timings.barge_in_reacted(time.perf_counter() - 0.002, metrics)
    assert timings.last_barge_in_ms is not None and timings.last_barge_in_ms >= 2
    assert _value(metrics, "voice_agent_barge_in_clear_seconds_count") == 1
    assert 0.002 <= _value(metrics, "voice_agent_barge_in_clear_seconds_sum") < 1


async def test_event_loop_lag_probe_sees_a_blocked_loop() -> None:
    metrics = RelayMetrics()
    probe = asyncio.create_task(watch_event_loop(metrics.event_loop_lag, interval=0.01))
    try:
        await asyncio.sleep(0.005)
        time.sleep(0.15)  # noqa: ASYNC251 - blocking the loop on purpose: this is what the probe must see
        await asyncio.sleep(0.05)  # the overdue probe runs first thing once the loop is free
    finally:
        probe.cancel()
    assert _value(metrics, "voice_agent_event_loop_lag_seconds_sum") >= 0.1
    assert _value(metrics, "voice_agent_event_loop_lag_seconds_bucket", le="0.1") < _value(
        metrics, "voice_agent_event_loop_lag_seconds_count"
    )


def test_metrics_listener_serves_the_registry_and_refuses_a_taken_port() -> None:
    metrics = RelayMetrics()
    metrics.model_reconnects.inc()
    server = serve_metrics(metrics.registry, "127.0.0.1", 0)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", trust_env=False, timeout=5).text
        assert "voice_agent_model_reconnects_total 1.0" in text
        with pytest.raises(MetricsPortError, match="METRICS_PORT"):
            serve_metrics(metrics.registry, "127.0.0.1", server.port)
    finally:
        server.close()
    with pytest.raises(httpx.ConnectError):  # nothing listens any more
        httpx.get(f"http://127.0.0.1:{server.port}/metrics", trust_env=False, timeout=5)


def test_serve_refuses_metrics_on_the_public_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    # `serve` would point logging at this test's captured stderr, which is closed after it.
    monkeypatch.setattr("app.cli.configure_logging", lambda *_args, **_kwargs: None)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("METRICS_PORT", "18080")
    monkeypatch.setenv("BUSINESS_API_BASE", "demo")
    assert main(["serve", "--port", "18080"]) == 2
    error = capsys.readouterr().err
    assert "METRICS_PORT" in error and "Traceback" not in error
