"""Per-caller limits: counting with a driven clock, and Redis trouble never holding up the webhook."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from app.calls.caller_limits import REDIS_TIMEOUT_SECONDS, CallerLimits, caller_key
from app.settings import Settings, load_settings

NUMBER = "+15551230000"


class FakeClock:
    """Wall and monotonic time that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"twilio_auth_token": "secret", "max_call_seconds": 600}
    return load_settings(_env_file=None, **(values | overrides))


def make_limits(clock: FakeClock, **overrides: object) -> CallerLimits:
    return CallerLimits(make_settings(**overrides), clock=clock, monotonic=clock)


async def test_a_caller_may_hold_two_calls_at_once_and_a_third_waits_for_one_to_end() -> None:
    limits = make_limits(FakeClock())
    assert await limits.admit("CA1", NUMBER) is None
    assert await limits.admit("CA2", NUMBER) is None
    assert await limits.admit("CA3", NUMBER) == "concurrent"
    assert await limits.admit("CA4", "+15559998888") is None  # another number is not affected
    await limits.release("CA1")
    assert await limits.admit("CA3", NUMBER) is None


async def test_a_caller_may_start_ten_calls_an_hour() -> None:
    clock = FakeClock()
    limits = make_limits(clock)
    for n in range(10):
        assert await limits.admit(f"CA{n}", NUMBER) is None
        await limits.release(f"CA{n}")
        clock.now += 60
    assert await limits.admit("CA10", NUMBER) == "hourly"
    clock.now += 3600 - 10 * 60 + 1  # the first call is now more than an hour old
    assert await limits.admit("CA10", NUMBER) is None
    assert await limits.admit("CA11", NUMBER) == "hourly"


async def test_a_retried_webhook_is_not_counted_twice() -> None:
    limits = make_limits(FakeClock(), max_calls_per_caller=1)
    assert await limits.admit("CA1", NUMBER) is None
    assert await limits.admit("CA1", NUMBER) is None
    assert await limits.admit("CA2", NUMBER) == "concurrent"


async def test_a_slot_nobody_released_lapses_after_the_longest_call() -> None:
    clock = FakeClock()
    limits = make_limits(clock, max_calls_per_caller=1)
    assert await limits.admit("CA1", NUMBER) is None
    clock.now += 600
    assert await limits.admit("CA2", NUMBER) == "concurrent"
    clock.now += 121
    assert await limits.admit("CA2", NUMBER) is None


async def test_the_slot_is_released_when_the_call_ends() -> None:
    limits = make_limits(FakeClock(), max_calls_per_caller=1)
    ended = asyncio.Event()
    assert await limits.admit("CA1", NUMBER) is None
    limits.release_when_ended("CA1", ended)
    assert await limits.admit("CA2", NUMBER) == "concurrent"
    ended.set()
    for _ in range(100):
        if await limits.admit("CA2", NUMBER) is None:
            break
        await asyncio.sleep(0.01)
    assert await limits.admit("CA2", NUMBER) is None
    await limits.aclose()


def test_callers_are_keyed_by_an_irreversible_hash() -> None:
    key = caller_key("secret", NUMBER)
    assert NUMBER.lstrip("+") not in key and "5551230000" not in key
    assert key == caller_key("secret", NUMBER) != caller_key("other-secret", NUMBER)
    assert caller_key("secret", None) == caller_key("secret", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: Redis hung, or a black-holed network."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("redis_kind", ["refused", "silent"])
async def test_redis_trouble_falls_back_to_local_counting_and_logs_once(
    redis_kind: str, silent_redis: str
) -> None:
    url = silent_redis if redis_kind == "silent" else f"redis://127.0.0.1:{free_port()}/0"
    clock = FakeClock()
    limits = CallerLimits(make_settings(redis_url=url, max_calls_per_caller=1), clock=clock, monotonic=clock)
    loop = asyncio.get_running_loop()
    with capture_logs() as logs:
        started = loop.time()
        assert await limits.admit("CA1", NUMBER) is None
        waited = loop.time() - started
        assert await limits.admit("CA2", NUMBER) == "concurrent"  # counted locally meanwhile
        await limits.release("CA1")
        assert await limits.admit("CA2", NUMBER) is None
    await limits.aclose()
    assert waited < REDIS_TIMEOUT_SECONDS * 4
    assert [entry["event"] for entry in logs] == ["caller_limits_counting_locally"]
    assert NUMBER not in repr(logs)


async def test_an_admission_never_blocks_the_event_loop_while_redis_is_silent(silent_redis: str) -> None:
    clock = FakeClock()
    limits = CallerLimits(make_settings(redis_url=silent_redis), clock=clock, monotonic=clock)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        assert await limits.admit("CA1", NUMBER) is None
    finally:
        ticker.cancel()
        await limits.aclose()
    assert ticks >= 5  # the loop went on turning for the whole wait on Redis
