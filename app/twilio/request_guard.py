"""The HTTP edge in front of every route: what a request must show before the relay spends anything on it.

An ASGI middleware, so it runs before FastAPI parses anything:
- a POST to a Twilio webhook (`/twilio/...`) without `X-Twilio-Signature` gets 403 before its body is read;
- a body declared (Content-Length) or streamed past `MAX_WEBHOOK_BODY_BYTES` gets 413, and only that much
  is ever buffered;
- a body that does not arrive within `HTTP_READ_TIMEOUT_SECONDS` gets 408 (a client trickling it a byte at
  a time holds nothing for long).
Each refusal closes the connection and is logged once, without the query string. The body that passed is
handed to the app as one message, so the routes read it at no extra cost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import get_logger

log = get_logger(__name__)
SIGNED_PREFIX = "/twilio/"


class RequestGuard:
    """Signature presence, body size and body time limits for every HTTP request."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, read_timeout_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout_seconds = read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        if (
            scope["method"] == "POST"
            and path.startswith(SIGNED_PREFIX)
            and not headers.get(b"x-twilio-signature")
        ):
            await _refuse(send, 403, "missing Twilio signature", path)
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "bad Content-Length", path)
                return
            if int(declared) > self.max_body_bytes:
                await _refuse(send, 413, "request body too large", path)
                return
        body = await self._read_body(receive, send, path)
        if body is None:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive, send: Send, path: str) -> bytes | None:
        """The whole body, or None once the request was refused (or the client left)."""
        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.read_timeout_seconds
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        await _refuse(send, 413, "request body too large", path)
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            await _refuse(send, 408, "request body too slow", path)
            return None


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay


async def _refuse(send: Send, status: int, reason: str, path: str) -> None:
    log.warning("http_request_refused", status=status, reason=reason, path=path)
    body = reason.encode()
    headers: list[Any] = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the request is not worth reading
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
