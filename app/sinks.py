"""The relay's event sink in production: the durable outbox, started and ready."""

from __future__ import annotations

from app.outbox import OutboxSink
from app.settings import Settings


def make_sink(settings: Settings) -> OutboxSink:
    """An outbox journaling to `DATA_DIR` and publishing to the configured queue (Redis or embedded)."""
    sink = OutboxSink(settings)
    sink.start()
    return sink
