"""Two relay instances on one Redis share each caller's count: a limit reached on one holds on the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.calls.caller_limits import CallerLimits
from app.calls.events import MemorySink
from app.main import create_app
from app.sim.demo_business import demo_backend
from app.sim.harness import LocalStack, bound_port, local_stack, serve_in_background, stop_server
from app.sim.twilio_webhook import CallerError
from tests.e2e.calls import answered
from tests.integration.workers_harness import RedisServer

pytestmark = pytest.mark.integration

NUMBER = "+15551230000"


Relays = tuple[LocalStack, str, list[CallerLimits]]


@pytest.fixture
async def two_relays(broker: RedisServer) -> AsyncIterator[Relays]:
    """A local stack and a second relay app on the same settings (so the same Redis)."""
    overrides = {"redis_url": broker.url, "max_calls_per_caller": 1, "max_calls_per_caller_per_hour": 3}
    async with local_stack(first_audio_delay=0.05, settings_overrides=overrides) as stack:
        other_app = create_app(stack.settings, sink=MemorySink(), business=demo_backend)
        other = await serve_in_background(other_app)
        assert stack.caller_limits is not None
        limits = [stack.caller_limits, other_app.state.caller_limits]
        try:
            yield stack, f"http://127.0.0.1:{bound_port(other)}", limits
        finally:
            await stop_server(other)


async def released(limits: list[CallerLimits]) -> None:
    """Wait until both relays have released the calls that ended (they do so as each call ends)."""
    async with asyncio.timeout(5):
        while any(one.counted_calls for one in limits):  # noqa: ASYNC110  # a count to watch, no event
            await asyncio.sleep(0.01)


async def test_a_call_held_on_one_relay_counts_on_the_other(two_relays: Relays, broker: RedisServer) -> None:
    stack, other_url, limits = two_relays
    async with stack.caller(from_number=NUMBER) as first:
        await answered(first)
        refused = stack.caller(from_number=NUMBER)
        refused.relay_url = other_url
        with pytest.raises(CallerError):
            await refused.dial()
        assert "reached the limit of calls" in refused.twiml
        keys = [key.decode() for key in broker.client().keys("*")]
        assert keys and all(NUMBER.lstrip("+") not in key for key in keys)
    await released(limits)
    again = stack.caller(from_number=NUMBER)
    again.relay_url = other_url
    async with again:
        await answered(again)


async def test_the_hourly_count_is_shared_too(two_relays: Relays) -> None:
    stack, other_url, limits = two_relays
    for n in range(4):
        caller = stack.caller(from_number=NUMBER)
        caller.relay_url = other_url if n % 2 else stack.relay_url
        if n < 3:
            async with caller:
                await caller.dial()
                await caller.connect()
            await released(limits)
            continue
        with pytest.raises(CallerError):
            await caller.dial()
        assert "reached the limit of calls" in caller.twiml
