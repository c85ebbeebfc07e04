"""Serving the relay with uvicorn, and draining calls on SIGTERM instead of cutting them.

Stock uvicorn closes every WebSocket (code 1012) the moment SIGTERM arrives, which hangs up every caller on
each deploy. Here the first SIGTERM/SIGINT only marks the relay as draining: readiness turns 503, the
webhook answers 503 (Twilio then uses the number's fallback URL) and new streams are refused, while live
calls go on. The server exits when the last call ends or `drain_seconds` pass; a second signal exits at once.
"""

from __future__ import annotations

import time
from types import FrameType
from typing import Any

import uvicorn

from app.calls.relay import Relay
from app.logs import get_logger

log = get_logger(__name__)


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal drains live calls."""

    def __init__(self, config: uvicorn.Config, *, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._drain_started: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_started is not None:
            super().handle_exit(sig, frame)  # second signal: stop now
            return
        self._drain_started = time.monotonic()
        relay = self._relay()
        if relay is None or relay.live_calls == 0:
            super().handle_exit(sig, frame)
            return
        relay.draining = True
        log.info("drain_started", live_calls=relay.live_calls, deadline_s=self.drain_seconds)

    def _relay(self) -> Relay | None:
        app: Any = self.config.loaded_app if self.config.loaded else None
        while app is not None and not hasattr(app, "state"):
            app = getattr(app, "app", None)
        relay = getattr(getattr(app, "state", None), "relay", None)
        return relay if isinstance(relay, Relay) else None

    async def on_tick(self, counter: int) -> bool:
        if self._drain_started is not None and not self.should_exit:
            relay = self._relay()
            overdue = time.monotonic() - self._drain_started > self.drain_seconds
            if relay is None or relay.live_calls == 0 or overdue:
                log.info("drain_finished", overdue=overdue)
                self.should_exit = True
        return await super().on_tick(counter)


def run_relay(app: Any, *, host: str, port: int, drain_seconds: float) -> None:
    """Serve `app` until a signal, draining live calls first."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws_max_size=1024 * 1024,
        proxy_headers=True,
        forwarded_allow_ips="*",
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, drain_seconds=drain_seconds)
    server.run()  # uvicorn's own loop setup: uvloop when installed (5-10% less CPU per call)
