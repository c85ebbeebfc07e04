"""The relay's metrics follow what happens on real calls through the relay: a dropped model socket is a
reconnect, a refused key is a model failure by reason, garbage frames are dropped frames by reason, a
barge-in is a reaction time, and every reply's first audio is a latency figure."""

from __future__ import annotations

import json

from app.metrics import RelayMetrics
from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import LOUD, answered, speak_and_hear_reply


def _value(metrics: RelayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_dropped_model_socket_counts_as_a_reconnect_not_a_failure() -> None:
    script = [SimTurn(hears="what are your hours", say="Nine to five."), SimTurn(say="As I was saying.")]
    async with local_stack(first_audio_delay=0.05, script=script) as stack:
        metrics = stack.relay.metrics
        async with stack.caller() as caller:
            await answered(caller)
            await speak_and_hear_reply(caller)
            await caller.wait_agent_silent(quiet=0.5, timeout=10)
            assert _value(metrics, "voice_agent_reply_first_audio_seconds_count") == 1
            assert _value(metrics, "voice_agent_model_reconnects_total") == 0
            await stack.sim.sessions[0].drop(1011)
            second = await stack.sim.wait_for_session(1, timeout=5)
            await second.wait_for("response.create", timeout=5)
            await caller.wait_agent_silent(quiet=0.5, timeout=10)
        assert _value(metrics, "voice_agent_model_reconnects_total") == 1
        assert not any(
            family.samples
            for family in metrics.registry.collect()
            if family.name == "voice_agent_model_failures"
        )


async def test_a_refused_key_is_a_model_failure_by_reason() -> None:
    async with local_stack(
        twilio_rest=True,
        sim_options={"reject_with_error": ("invalid_api_key", "Incorrect API key provided.")},
    ) as stack:
        assert stack.rest is not None
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            await stack.rest.wait_for_request(lambda r: "Twiml" in r.form, timeout=10)
        metrics = stack.relay.metrics
        assert _value(metrics, "voice_agent_model_failures_total", reason="invalid_api_key") == 1
        assert _value(metrics, "voice_agent_model_reconnects_total") == 0


async def test_garbage_frames_are_counted_as_dropped_by_reason() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect()
            for bad in ("{not json", json.dumps({"event": "media"}), "x" * 200_000):
                await caller.send_raw(bad)
            await caller.wait_agent_audio(timeout=5)
        metrics = stack.relay.metrics
        assert _value(metrics, "voice_agent_frames_dropped_total", reason="malformed") == 2
        assert _value(metrics, "voice_agent_frames_dropped_total", reason="oversized") == 1


async def test_a_barge_in_records_the_relays_reaction() -> None:
    script = [SimTurn(hears="tell me everything", audio_seconds=6.0)]
    async with local_stack(first_audio_delay=0.05, script=script) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await speak_and_hear_reply(caller)
            caller.say(LOUD)  # talks over the long answer
            await stack.sim.sessions[0].wait_for("conversation.item.truncate", timeout=5)
        metrics = stack.relay.metrics
        assert _value(metrics, "voice_agent_barge_in_clear_seconds_count") >= 1
        assert 0 < _value(metrics, "voice_agent_barge_in_clear_seconds_sum") < 1
