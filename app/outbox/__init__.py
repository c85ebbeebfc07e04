"""The relay's outbox: call events journaled on local disk and handed to the workers without blocking."""

from app.outbox.sink import OutboxSink, OutboxStats

__all__ = ["OutboxSink", "OutboxStats"]
