"""One structured line per HTTP request, in place of uvicorn's access log.

uvicorn's access log prints the full request line, query string included; the relay's URLs carry nothing
personal, but a query string is still not ours to print (a forged request can put anything there). This
line has the method, the path without its query, the status and the time taken.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import get_logger

log = get_logger("app.access")


class AccessLog:
    """ASGI middleware: `http_request method=POST path=/twilio/incoming status=200 ms=3.1`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before responding

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            client = scope.get("client")
            log.info(
                "http_request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
                client=client[0] if client else None,
            )
