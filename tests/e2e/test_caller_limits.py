"""A caller over their limit hears a polite no (and is offered a person) before any model session opens."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from app.sim.harness import local_stack
from app.sim.twilio_webhook import CallerError
from tests.e2e.calls import answered

HUMAN = "+15557654321"
NUMBER = "+15551230000"


def spoken(twiml: str) -> tuple[list[str], list[str]]:
    root = ET.fromstring(twiml)
    return [say.text or "" for say in root.iter("Say")], [dial.text or "" for dial in root.iter("Dial")]


@pytest.mark.parametrize("human", [HUMAN, None])
async def test_a_caller_over_the_concurrent_limit_is_refused_before_any_model_session(
    human: str | None,
) -> None:
    overrides = {"max_calls_per_caller": 1, "human_transfer_number": human}
    async with local_stack(first_audio_delay=0.05, settings_overrides=overrides) as stack:
        async with stack.caller(from_number=NUMBER) as first:
            await answered(first)
            refused = stack.caller(from_number=NUMBER)
            with pytest.raises(CallerError):
                await refused.dial()  # no <Connect><Stream> in the answer
            says, dials = spoken(refused.twiml)
            assert "reached the limit of calls" in says[0]
            assert dials == ([HUMAN] if human else [])
            assert refused.call_sid not in stack.relay.calls
            async with stack.caller(from_number="+15559998888") as other:  # other numbers still get through
                await answered(other)
            assert (
                len(stack.sim.sessions) == 2
            )  # the first call's and the other number's, none for the refused


async def test_a_caller_gets_through_again_once_their_call_has_ended() -> None:
    async with local_stack(first_audio_delay=0.05, settings_overrides={"max_calls_per_caller": 1}) as stack:
        async with stack.caller(from_number=NUMBER) as first:
            await answered(first)
        limits = stack.caller_limits
        assert limits is not None
        async with asyncio.timeout(5):  # the relay ends the first call as its stream closes
            while limits.counted_calls:  # noqa: ASYNC110  # a count to watch, not an event to wait on
                await asyncio.sleep(0.01)
        async with stack.caller(from_number=NUMBER) as again:
            await answered(again)
