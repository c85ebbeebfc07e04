# kombu's Connection API is untyped.
# mypy: disable-error-code="no-untyped-call"
"""The embedded queue's delivery semantics at the kombu level, across two independent connections (as two
worker processes would hold): a taken message is invisible to others, comes back when its holder never
acknowledges it, disappears for good once acknowledged, and comes back at once when requeued."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu.connection import Connection

from workers.embedded_queue import queued_messages, register_transport

VISIBILITY_TIMEOUT = 0.5


@pytest.fixture
def connections(tmp_path: Path) -> Iterator[tuple[Any, Any, Path]]:
    path = tmp_path / "queue.sqlite3"
    options = {"queue_path": str(path), "visibility_timeout": VISIBILITY_TIMEOUT, "polling_interval": 0.01}
    first = Connection(register_transport(), transport_options=options)
    second = Connection(register_transport(), transport_options=options)
    yield first, second, path
    first.release()
    second.release()


def test_an_unacknowledged_message_comes_back_after_the_visibility_timeout(
    connections: tuple[Any, Any, Path],
) -> None:
    first, second, path = connections
    first.SimpleQueue("jobs").put({"n": 1})
    taken = first.SimpleQueue("jobs").get(timeout=1)
    assert taken.payload == {"n": 1}
    with pytest.raises(Empty):
        second.SimpleQueue("jobs").get(timeout=0.2)  # held by the first consumer
    time.sleep(VISIBILITY_TIMEOUT)
    again = second.SimpleQueue("jobs").get(timeout=1)  # the first consumer "died"
    assert again.payload == {"n": 1}
    again.ack()
    time.sleep(VISIBILITY_TIMEOUT)
    with pytest.raises(Empty):
        second.SimpleQueue("jobs").get(timeout=0.2)
    assert queued_messages(path, "jobs") == 0


def test_a_requeued_message_is_visible_at_once_and_order_is_kept(connections: tuple[Any, Any, Path]) -> None:
    first, second, _ = connections
    producer = first.SimpleQueue("jobs")
    for n in range(3):
        producer.put({"n": n})
    taken = first.SimpleQueue("jobs").get(timeout=1)
    assert taken.payload == {"n": 0}
    taken.requeue()
    received = []
    consumer = second.SimpleQueue("jobs")
    for _ in range(3):
        message = consumer.get(timeout=1)
        received.append(message.payload["n"])
        message.ack()
    assert sorted(received) == [0, 1, 2]
