"""Bad input is logged and survived; one call's failure never touches another."""

from __future__ import annotations

import asyncio
import json

from app.sim.harness import local_stack
from app.sim.realtime_script import SimTurn
from tests.e2e.calls import LOUD


async def test_malformed_frames_are_survived_and_the_call_goes_on() -> None:
    script = [SimTurn(hears="hi", say="Hello again.")]
    async with local_stack(first_audio_delay=0.05, script=script) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect(send_start=False)
            # Media before `start`, then every kind of garbage Twilio never sends.
            await caller.send_raw(
                json.dumps({"event": "media", "media": {"payload": "//8=", "timestamp": "0"}})
            )
            await caller.send_start()
            for bad in (
                "{not json",
                json.dumps({"event": "media", "media": {"payload": "***", "timestamp": "20"}}),
                json.dumps({"event": "media"}),
                json.dumps({"event": "surprise", "data": 1}),
                json.dumps({"event": "mark", "mark": {"name": "never-sent"}}),
                "x" * 200_000,
                "[]",
            ):
                await caller.send_raw(bad)
            await caller.wait_agent_audio(timeout=5)
            await caller.wait_agent_silent(quiet=0.3, timeout=10)
            caller.say(LOUD)
            said = await caller.wait_said(timeout=5)
            await caller.wait_agent_audio(timeout=10, since=said)
            assert not caller.closed_by_relay.is_set()
        assert stack.sim.validation_errors == []


async def test_a_model_failure_on_one_call_leaves_the_others_alone() -> None:
    script = [SimTurn(hears="a", say="Answer one."), SimTurn(hears="b", say="Answer two.")]
    async with local_stack(first_audio_delay=0.05, script=script) as stack:
        async with stack.caller() as first, stack.caller() as second:
            await first.dial()
            await first.connect()
            await second.dial()
            await second.connect()
            await first.wait_agent_silent(quiet=0.3, timeout=10)
            await second.wait_agent_silent(quiet=0.3, timeout=10)
            # Drop the model socket of the first call abruptly.
            first_call = stack.relay.calls[first.call_sid]
            victim = next(s for s in stack.sim.sessions if s.session_id == first_call.session_id)
            await victim.drop(1006)
            second.say(LOUD)
            said = await second.wait_said(timeout=5)
            await second.wait_agent_audio(timeout=10, since=said)
            assert not second.closed_by_relay.is_set()
            # The first call got a new session of its own; the second call's session was never touched.
            await stack.sim.wait_for_session(2, timeout=5)
            assert not first.closed_by_relay.is_set()
            assert len([s for s in stack.sim.sessions if s.closed.is_set()]) == 1


async def test_many_concurrent_calls_are_all_greeted() -> None:
    async with local_stack(first_audio_delay=0.1) as stack:
        callers = [stack.caller() for _ in range(8)]
        try:
            await asyncio.gather(*(c.dial() for c in callers))
            await asyncio.gather(*(c.connect() for c in callers))
            firsts = await asyncio.gather(*(c.wait_agent_audio(timeout=5) for c in callers))
            for caller, first in zip(callers, firsts, strict=True):
                assert caller.start_sent_at is not None
                assert first - caller.start_sent_at < 0.5
        finally:
            await asyncio.gather(*(c.hang_up() for c in callers))
        await asyncio.sleep(0.2)
        assert stack.relay.calls == {}
