"""A minimal RFC 6455 WebSocket over asyncio protocols, for the bench's load peers only.

The `websockets` library's asyncio connection costs tens of microseconds per message (locks, context
managers, an assembler, a drain per send). At 100 calls the load peers move ~30,000 messages a second, so
with it the load generator needs more CPU than this 2-core machine has and starves the relay it measures.
Here a message costs one `transport.write` or one parse in `data_received`, with callbacks instead of
tasks. Only what the peers need: text frames (plus fragments), ping/pong, close; no extensions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from websockets.speedups import apply_mask

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _CONTINUATION, _CLOSE, _PING, _PONG = 0x1, 0x0, 0x8, 0x9, 0xA
_HEAD_END = b"\r\n\r\n"

TextHandler = Callable[[str, float], None]  # (message, perf_counter when its bytes arrived)


def _accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def _frame(opcode: int, payload: bytes, *, mask: bytes | None) -> bytes:
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, length)
    return head + mask + apply_mask(payload, mask) if mask else head + payload


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


class WsEndpoint(asyncio.Protocol):
    """One end of a WebSocket. Client ends mask what they send (RFC 6455 5.3); both ends unmask."""

    def __init__(self, *, client: bool) -> None:
        self.client = client
        # One masking key per connection rather than per frame: peers cannot tell, and it spares a syscall.
        self._mask = os.urandom(4) if client else None
        self.on_text: TextHandler = lambda text, at: None
        self.on_open: Callable[[WsEndpoint, str, dict[str, str]], None] = lambda endpoint, path, headers: None
        self.closed = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._open = False
        self._fragments: list[bytes] = []
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client_key = ""

    # --- plumbing ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        self.closed.set()
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionError("closed during the handshake"))

    def send_text(self, text: str) -> None:
        """Queue one text message (dropped once the connection is closed)."""
        if self._open and self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(_TEXT, text.encode(), mask=self._mask))

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if self._open:
                self.transport.write(_frame(_CLOSE, struct.pack("!H", code), mask=self._mask))
            self._open = False
            self.transport.close()

    # --- handshake -----------------------------------------------------------------------------------
    def request_upgrade(self, host: str, path: str, headers: dict[str, str]) -> None:
        """Client side: send the opening handshake."""
        assert self.transport is not None
        self._client_key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._client_key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def opened(self) -> None:
        await self._handshake

    def _on_head(self, head: bytes) -> None:
        assert self.transport is not None
        first_line, headers = _parse_head(head)
        if self.client:
            if first_line.split(" ")[1:2] != ["101"] or headers.get("sec-websocket-accept") != _accept_key(
                self._client_key
            ):
                self._handshake.set_exception(ConnectionError(f"upgrade refused: {first_line}"))
                self.transport.close()
                return
        else:
            accept = _accept_key(headers.get("sec-websocket-key", ""))
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
        self._open = True
        self._handshake.set_result(None)
        self.on_open(self, first_line.split(" ")[1], headers)

    # --- frames --------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        arrived = time.perf_counter()
        self._buffer += data
        if not self._open and not self._handshake.done():
            end = self._buffer.find(_HEAD_END)
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            del self._buffer[: end + len(_HEAD_END)]
            self._on_head(head)
        while self._open and (frame := self._next_frame()) is not None:
            opcode, fin, payload = frame
            if opcode in (_TEXT, _CONTINUATION):
                self._fragments.append(payload)
                if fin:
                    message = b"".join(self._fragments).decode()
                    self._fragments.clear()
                    self.on_text(message, arrived)
            elif opcode == _PING and self.transport is not None:
                self.transport.write(_frame(_PONG, payload, mask=self._mask))
            elif opcode == _CLOSE:
                self.close(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000)

    def _next_frame(self) -> tuple[int, bool, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        length, position = second & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, position = struct.unpack_from("!H", buffer, 2)[0], 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, position = struct.unpack_from("!Q", buffer, 2)[0], 10
        key = b""
        if second & 0x80:
            key, position = bytes(buffer[position : position + 4]), position + 4
        if len(buffer) < position + length:
            return None
        payload = bytes(buffer[position : position + length])
        del buffer[: position + length]
        if key:
            payload = apply_mask(payload, key)
        return first & 0x0F, bool(first & 0x80), payload


async def connect_ws(url: str, headers: dict[str, str]) -> WsEndpoint:
    """Open a client WebSocket to a ws:// `url` with extra request `headers`."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    _, endpoint = await loop.create_connection(lambda: WsEndpoint(client=True), host, port)
    endpoint.request_upgrade(
        f"{host}:{port}", parts.path + (f"?{parts.query}" if parts.query else ""), headers
    )
    await endpoint.opened()
    return endpoint


async def serve_ws(on_open: Callable[[WsEndpoint, str, dict[str, str]], None]) -> asyncio.Server:
    """Listen on a free loopback port; `on_open(endpoint, path, headers)` runs for each new connection."""

    def factory() -> WsEndpoint:
        endpoint = WsEndpoint(client=False)
        endpoint.on_open = on_open
        return endpoint

    return await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
