"""The conversation kept for a caller's way back: shared through Redis, never blocking when Redis is down."""

from __future__ import annotations

import asyncio
import socket
import time

from app.calls.history import LocalHistoryStore, RedisHistoryStore, history_store_for

SID = "CA" + "9" * 32
LINES = ["Caller: I need a person", "You: Connecting you now."]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens here once the socket is closed


async def test_the_local_store_keeps_a_history_until_it_expires() -> None:
    store = LocalHistoryStore(ttl_seconds=0.05)
    await store.save(SID, LINES)
    assert await store.load(SID) == LINES
    await asyncio.sleep(0.06)
    assert await store.load(SID) == []


async def test_with_redis_down_saving_and_loading_return_quickly_and_fall_back_to_this_process() -> None:
    store = RedisHistoryStore(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.2)
    started = time.monotonic()
    await store.save(SID, LINES)
    assert await store.load(SID) == LINES  # this instance's own copy
    assert await RedisHistoryStore(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.2).load(SID) == []
    assert time.monotonic() - started < 2.0
    await store.close()


def test_the_relay_shares_histories_through_redis_when_it_has_one() -> None:
    assert isinstance(history_store_for("redis://127.0.0.1:6390/0"), RedisHistoryStore)
    assert isinstance(history_store_for(None), LocalHistoryStore)
