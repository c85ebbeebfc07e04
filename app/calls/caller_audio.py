"""The caller's audio on its way to the model: converted (pcm16), held while the socket opens, appended.

Twilio sends 20 ms frames from the moment the stream starts, which can be before the model socket (opened at
the webhook) is ready, or while it reconnects. Up to `INBOUND_BUFFER_FRAMES` are held meanwhile (the oldest
dropped first, but never the first frame once flushing began) and sent in order once the socket is ready.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable

from app.lib.audio import InboundConverter
from app.realtime.session import LinkClosed
from app.twilio import messages as tw

INBOUND_BUFFER_FRAMES = 150  # 3 s of caller audio held while the model socket is still opening


class CallerAudio:
    """One call's inbound audio path; `send_text` writes to the model socket (raises `LinkClosed`)."""

    def __init__(
        self,
        audio_format: str,
        model_ready: asyncio.Event,
        send_text: Callable[[str], Awaitable[None]],
        on_overflow: Callable[[], None] = lambda: None,
    ) -> None:
        self.received_bytes = 0
        self._on_overflow = on_overflow
        self._model_ready = model_ready
        self._send_text = send_text
        self._pending: list[str] = []
        self._inbound = InboundConverter() if audio_format == "pcm16" else None

    async def on_media(self, media: tw.Media) -> None:
        """A 20 ms frame of caller audio."""
        self.received_bytes += media.payload_bytes
        if self._inbound is None:
            payload = media.payload_b64
        else:
            pcm = self._inbound.convert(base64.b64decode(media.payload_b64))
            payload = base64.b64encode(pcm).decode()
        if not self._model_ready.is_set() or self._pending:
            if len(self._pending) >= INBOUND_BUFFER_FRAMES:
                self._pending.pop(1 if self._model_ready.is_set() else 0)
                self._on_overflow()
            self._pending.append(payload)
            return
        await self._append(payload)

    async def _append(self, payload_b64: str) -> None:
        with contextlib.suppress(LinkClosed):
            await self._send_text(f'{{"type":"input_audio_buffer.append","audio":"{payload_b64}"}}')

    async def flush(self) -> None:
        """Send the caller audio held while the model socket was opening."""
        while self._pending:
            await self._append(self._pending[0])
            if self._pending:
                self._pending.pop(0)
