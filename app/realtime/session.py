"""The model edge: one OpenAI Realtime (GA) WebSocket per call.

Opened through the openai SDK (`client.realtime.connect`), so the endpoint follows `OPENAI_BASE_URL` like
every other SDK call. Events travel as raw JSON text: the hot path neither pays for the SDK's per-event
transforms nor trusts its unvalidated models (trap 9); handlers dispatch on the `type` string, and unknown
types are ignored.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from app.settings import Settings

FORMATS: dict[str, dict[str, Any]] = {
    "pcmu": {"type": "audio/pcmu"},
    "pcm16": {"type": "audio/pcm", "rate": 24000},
}
# ms of audio per byte of model audio, derived from the negotiated format (trap 2).
BYTES_PER_MS = {"pcmu": 8, "pcm16": 48}


class LinkClosed(Exception):
    """The model socket closed; `code` says why (1000 normal, 1001 session cap, 1006/1011 failures)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"model socket closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason


def make_openai_client(settings: Settings) -> AsyncOpenAI:
    """One client per process; its base URL is `OPENAI_BASE_URL` when set."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return AsyncOpenAI(api_key=key or "unset", base_url=settings.openai_base_url, max_retries=0)


def session_config(settings: Settings, *, instructions: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The `session.update` body: formats, voice, VAD, transcription, tools.

    `interrupt_response` is off because the relay owns barge-in: it knows what the caller heard, so it
    clears Twilio, truncates and cancels itself (the server would cancel without knowing any of that).
    """
    audio_format = FORMATS[settings.realtime_audio_format]
    transcription = {"model": settings.transcription_model} if settings.transcription_model else None
    return {
        "type": "realtime",
        "instructions": instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": audio_format,
                "transcription": transcription,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": settings.vad_silence_ms,
                    "create_response": True,
                    "interrupt_response": False,
                },
            },
            "output": {"format": audio_format, "voice": settings.realtime_voice},
        },
        "tools": tools,
        "tool_choice": "auto",
    }


class RealtimeLink:
    """A connected Realtime socket carrying JSON text both ways."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.closed = False

    @classmethod
    async def open(cls, client: AsyncOpenAI, model: str) -> RealtimeLink:
        """Connect to the Realtime endpoint for `model`."""
        connection = await client.realtime.connect(model=model).enter()
        return cls(connection)

    async def send_json(self, event: dict[str, Any]) -> None:
        await self.send_text(json.dumps(event))

    async def send_text(self, text: str) -> None:
        try:
            await self._connection.send_raw(text)
        except ConnectionClosed as exc:
            raise LinkClosed(_code(exc), _reason(exc)) from None

    async def receive(self) -> dict[str, Any]:
        """The next server event as a dict; raises `LinkClosed` when the socket is gone."""
        while True:
            try:
                raw = await self._connection.recv_bytes()
            except ConnectionClosedOK as exc:
                raise LinkClosed(_code(exc) or 1000, _reason(exc)) from None
            except ConnectionClosed as exc:
                raise LinkClosed(_code(exc), _reason(exc)) from None
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                return event

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Closing a dead socket must not fail the call's teardown.
        with contextlib.suppress(Exception):
            await self._connection.close()


def _code(exc: ConnectionClosed) -> int | None:
    return exc.rcvd.code if exc.rcvd is not None else None


def _reason(exc: ConnectionClosed) -> str:
    return exc.rcvd.reason if exc.rcvd is not None else ""
