"""Serving the relay with uvicorn, and draining calls on SIGTERM instead of cutting them.

uvicorn reads a request's headers with no deadline: a client that connects and trickles its headers a byte
at a time (slowloris) holds a connection forever, and uvicorn's keep-alive timer only runs between requests.
`HeaderDeadlineProtocol` closes a connection whose request headers are not complete within
`HTTP_READ_TIMEOUT_SECONDS` of its first byte (or of the connection, for the first request); the body's own
deadline is `RequestGuard`'s. WebSocket upgrades are covered too: the upgrade is an HTTP request until its
headers are complete; after it, the stream must send `start` within `STREAM_START_TIMEOUT_SECONDS`, and a
peer that stops answering the WebSocket pings (one trickling a frame cannot answer) is closed after uvicorn's
20 s ping interval plus 20 s timeout. `X-Forwarded-*` headers are trusted only from `FORWARDED_ALLOW_IPS`.

Stock uvicorn closes every WebSocket (code 1012) the moment SIGTERM arrives, which hangs up every caller on
each deploy. Here the first SIGTERM/SIGINT only marks the relay as draining: readiness turns 503, the
webhook answers 503 (Twilio then uses the number's fallback URL) and new streams are refused, while live
calls go on. The server exits when the last call ends or `drain_seconds` pass; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.calls.relay import Relay
from app.logs import get_logger
from app.settings import Settings

log = get_logger(__name__)
WS_MAX_FRAME_BYTES = 1024 * 1024  # the WebSocket layer closes with 1009 past this (it cannot skip a frame)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline for each request's headers."""

    header_timeout_seconds = 10.0  # set per server by `relay_config`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:  # a later request on a kept-alive connection
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_seconds, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            log.warning("http_headers_timeout", waited_s=self.header_timeout_seconds)
            self.transport.close()


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


def relay_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """The production uvicorn settings for `app` (also used by tests and the edge bench)."""
    protocol = type(
        "RelayHttpProtocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout_seconds": settings.http_read_timeout_seconds},
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        ws_max_size=WS_MAX_FRAME_BYTES,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,
        access_log=False,  # app.access_log logs each request without its query string
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def run_relay(app: Any, *, host: str, port: int, drain_seconds: float) -> None:
    """Serve `app` (built by `create_app`, which holds its settings) until a signal, draining calls first."""
    config = relay_config(app, app.state.settings, host=host, port=port)
    server = DrainingServer(config, drain_seconds=drain_seconds)
    server.run()  # uvicorn's own loop setup: uvloop when installed (5-10% less CPU per call)
