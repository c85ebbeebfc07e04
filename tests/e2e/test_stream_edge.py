"""The media stream's edge: a stream binds once, tokens expire and open one stream, idle upgrades are closed,
and whatever closes the socket ends the call and closes its model session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from app.calls.caller import CallerInfo
from app.sim.harness import PUBLIC_BASE_URL, LocalStack, local_stack
from app.sim.twilio_caller import SimulatedCaller
from app.sim.twilio_webhook import parse_connect_stream
from app.twilio.signature import sign
from app.twilio.transfer_link import TransferContext, seal
from app.twilio.twiml import stream_parameters
from tests.e2e.calls import answered, speak_and_hear_reply


def _replay(stack: LocalStack, original: SimulatedCaller) -> SimulatedCaller:
    """A second socket that sends the `start` `original` sent, word for word (a captured frame)."""
    replay = stack.caller()
    replay.call_sid = original.call_sid
    replay.stream_sid = original.stream_sid
    replay.twiml = original.twiml
    replay.stream_url = original.stream_url
    replay.parameters = dict(original.parameters)
    return replay


async def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    """Poll `condition` every 10 ms; fail if it is not true within `timeout` seconds."""
    for _ in range(round(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition(), f"not true within {timeout} s"


async def test_a_second_start_is_ignored_and_the_call_goes_on() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            call = stack.relay.calls[caller.call_sid]
            await caller.send_start()  # the same, validly signed `start` again
            await speak_and_hear_reply(caller)
            assert not caller.closed_by_relay.is_set()
            assert stack.relay.calls.get(caller.call_sid) is call and not call.ended.is_set()
            await caller.hang_up()
        # Once the socket is gone the call ends and its model session closes, within a second.
        session = stack.sim.sessions[0]
        await _wait_for(lambda: session.closed.is_set() and not stack.relay.calls, timeout=1.0)
        assert len(stack.sim.sessions) == 1


async def test_a_start_replayed_after_the_call_ended_is_refused_without_a_session() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await caller.hang_up()
        await _wait_for(lambda: not stack.relay.calls, timeout=1.0)
        async with _replay(stack, caller) as replay:
            await replay.connect()
            assert await replay.wait_closed_by_relay(timeout=5) == 1008
        assert stack.relay.calls == {}
        assert len(stack.sim.sessions) == 1  # no fresh paid session, no greeting


async def test_a_token_opens_one_stream_only_even_on_a_fresh_webhook_free_relay() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            # The same start on a second socket while the first is live: refused, the first call untouched.
            async with _replay(stack, caller) as replay:
                await replay.connect()
                assert await replay.wait_closed_by_relay(timeout=5) == 1008
            await speak_and_hear_reply(caller)
            assert not caller.closed_by_relay.is_set()


async def test_an_expired_stream_token_is_refused() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        caller = stack.caller()
        async with caller:
            await caller.dial()
            # What the webhook would have issued for this call two minutes ago, correctly signed.
            info = CallerInfo(
                call_sid=caller.call_sid,
                from_number=caller.parameters["from"],
                to_number=caller.parameters["to"],
                caller_state=caller.parameters["callerState"],
            )
            caller.parameters = stream_parameters(
                stack.settings.auth_token(), info, issued_at=time.time() - 120
            )
            await caller.connect()
            assert await caller.wait_closed_by_relay(timeout=5) == 1008
        assert not any(call.attached for call in stack.relay.calls.values())


async def test_a_signed_upgrade_that_never_sends_start_is_closed() -> None:
    overrides = {"stream_start_timeout_seconds": 0.5}
    async with local_stack(first_audio_delay=0.05, settings_overrides=overrides) as stack:
        async with stack.caller() as caller:
            await caller.dial()
            await caller.connect(send_start=False)  # media frames flow, but no `start`
            assert await caller.wait_closed_by_relay(timeout=5) == 1008


async def test_a_frame_over_the_socket_limit_ends_the_call_and_its_session() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await caller.send_raw("x" * (1024 * 1024 + 1))  # over the WebSocket layer's 1 MiB limit
            # 1009 from the relay; a caller still sending when the socket closes may only see 1006.
            assert await caller.wait_closed_by_relay(timeout=5) in (1009, 1006)
        session = stack.sim.sessions[0]
        await _wait_for(lambda: session.closed.is_set() and not stack.relay.calls, timeout=1.0)


async def test_when_the_relay_closes_the_stream_the_call_ends_at_once() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            call = stack.relay.calls[caller.call_sid]
            # Freeze the caller's side: it stops reading, so the close handshake never completes.
            for task in caller._tasks:
                task.cancel()
            await call.hang_up_stream()
            session = stack.sim.sessions[0]
            await _wait_for(lambda: session.closed.is_set() and not stack.relay.calls, timeout=1.0)


async def test_a_return_stream_after_a_failed_transfer_is_a_new_segment_not_a_replay() -> None:
    async with local_stack(first_audio_delay=0.05) as stack:
        async with stack.caller() as caller:
            await answered(caller)
            await caller.hang_up()  # the first segment ends (as when the call is redirected to <Dial>)
        await _wait_for(lambda: not stack.relay.calls, timeout=1.0)
        # Twilio's <Dial action> for a transfer nobody answered: the caller comes back on segment 2.
        token = stack.settings.auth_token()
        context = seal(token, TransferContext(caller.from_number, caller.to_number, "CA", segment=2))
        path = f"/twilio/transfer/done?ctx={context}"
        form = {"CallSid": caller.call_sid, "DialCallStatus": "no-answer"}
        headers = {"X-Twilio-Signature": sign(token, PUBLIC_BASE_URL + path, form)}
        async with httpx.AsyncClient(trust_env=False) as http:
            done = await http.post(stack.relay_url + path, data=form, headers=headers)
        assert done.status_code == 200 and "<Stream" in done.text
        back = stack.caller()
        back.call_sid = caller.call_sid
        back.stream_url, back.parameters = parse_connect_stream(done.text, PUBLIC_BASE_URL)
        async with back:
            await back.connect()
            await back.wait_agent_audio(timeout=5)  # the same CallSid, a new segment: welcome
            async with _replay(stack, caller) as replay:  # segment 1's start, replayed meanwhile
                await replay.connect()
                assert await replay.wait_closed_by_relay(timeout=5) == 1008
            assert not back.closed_by_relay.is_set()
