"""`WS /twilio/stream`: the call's Media Streams socket.

The upgrade is refused (close 1008 before accept) unless its `X-Twilio-Signature` signs the wss URL we wrote
in the TwiML. The `start` frame must come within `STREAM_START_TIMEOUT_SECONDS` and carry an unexpired stream
token the webhook issued for this CallSid, not used before, for a call segment this relay has not ended;
otherwise the socket is closed with 1008. A stream binds once: a later `start` is logged and ignored. After
that, frames are parsed and handed to the call; a malformed, oversized (over `MAX_FRAME_BYTES`) or unknown
frame is logged and skipped. A frame over the WebSocket layer's limit (1 MiB) cannot be skipped: the
protocol library closes the socket with 1009 before the app sees it. Whatever closes the socket (the caller,
the relay, a protocol error), the bound call ends with it and its model session is closed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from fastapi import APIRouter, Response, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.calls.call import Call
from app.calls.caller import CallerInfo
from app.calls.relay import DuplicateStreamError, Relay, StreamEndedError
from app.logs import bind_call_sid, get_logger
from app.settings import Settings
from app.twilio import messages as tw
from app.twilio.signature import is_valid_signature, is_valid_stream_token, stream_token_is_fresh
from app.twilio.twiml import bound_values

log = get_logger(__name__)
router = APIRouter()
_MACHINE_ID = re.compile(r"^[0-9a-z]{6,32}$")


class StreamOutput:
    """The call's writer to Twilio; a write to a closed socket is dropped, never raised into the call."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self.closed = False
        self.on_close: Callable[[], None] | None = None  # the stream's call ends with the socket

    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self._websocket.send_text(text)
        except (RuntimeError, OSError, WebSocketDisconnect):
            self.closed = True

    async def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_close is not None:
            self.on_close()
        try:
            if self._websocket.application_state == WebSocketState.CONNECTED:
                await self._websocket.close(code=code)
        except (RuntimeError, OSError, WebSocketDisconnect):
            pass  # already gone


def caller_from_start(start: tw.Start) -> CallerInfo:
    params = start.custom_parameters
    segment = params.get("segment", "1")
    return CallerInfo(
        call_sid=start.call_sid,
        from_number=params.get("from") or None,
        to_number=params.get("to") or None,
        caller_state=params.get("callerState") or None,
        resume=params.get("resume") or None,
        segment=int(segment) if segment.isdigit() else 1,
    )


def start_is_bound(auth_token: str, start: tw.Start, *, ttl_seconds: float, now: float | None = None) -> bool:
    """True when `start` carries an unexpired token the webhook issued for this call and caller details."""
    params = start.custom_parameters
    if params.get("callSid") != start.call_sid:
        return False
    if not stream_token_is_fresh(params.get("issued"), ttl_seconds, time.time() if now is None else now):
        return False
    return is_valid_stream_token(auth_token, params.get("token"), *bound_values(params))


@router.websocket("/twilio/stream/{instance}")
async def media_stream_on_instance(websocket: WebSocket, instance: str) -> None:
    """A stream URL naming the machine that pre-opened the session (STREAM_AFFINITY=fly-replay)."""
    settings: Settings = websocket.app.state.settings
    if not _signed(websocket):
        log.warning("stream_upgrade_rejected", draining=False)
        await websocket.close(code=1008)
        return
    here = settings.fly_machine_id
    if settings.stream_affinity == "fly-replay" and here and instance != here and _MACHINE_ID.match(instance):
        # Fly's proxy replays the upgrade on the named machine, where the session is waiting.
        await websocket.send_denial_response(
            Response(
                "replaying on the machine that answered the webhook",
                409,
                {"fly-replay": f"instance={instance}"},
            )
        )
        return
    await media_stream(websocket)


def _signed(websocket: WebSocket) -> bool:
    settings: Settings = websocket.app.state.settings
    url = settings.ws_origin(str(websocket.base_url).replace("ws", "http", 1)) + websocket.url.path
    return is_valid_signature(settings.auth_token(), url, {}, websocket.headers.get("x-twilio-signature"))


@router.websocket("/twilio/stream")
async def media_stream(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    relay: Relay = websocket.app.state.relay
    if relay.draining or not _signed(websocket):
        log.warning("stream_upgrade_rejected", draining=relay.draining)
        await websocket.close(code=1008)
        return
    await websocket.accept()
    output = StreamOutput(websocket)
    call: Call | None = None
    reason = "caller_hung_up"
    start_deadline = asyncio.get_running_loop().time() + settings.stream_start_timeout_seconds
    try:
        while True:
            if call is None:
                try:
                    async with asyncio.timeout_at(start_deadline):
                        message = await websocket.receive()
                except TimeoutError:
                    log.warning("stream_start_timeout", waited_s=settings.stream_start_timeout_seconds)
                    reason = "rejected"
                    break
            else:
                message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(text) > settings.max_frame_bytes:
                log.warning("frame_oversized", size=len(text), call_sid=call.sid if call else None)
                relay.metrics.dropped["oversized"].inc()
                continue
            try:
                frame = tw.parse_frame(text)
            except tw.FrameError as exc:
                log.warning("frame_malformed", error=str(exc)[:120], call_sid=call.sid if call else None)
                relay.metrics.dropped["malformed"].inc()
                continue
            if isinstance(frame, tw.Media):
                if call is not None:
                    await call.on_media(frame)
                continue
            if isinstance(frame, tw.Mark):
                if call is not None:
                    await call.on_mark(frame.name)
            elif isinstance(frame, tw.Start):
                if call is not None:
                    log.warning("stream_second_start_ignored", call_sid=call.sid)
                    continue
                call = await _bind(relay, settings, frame, output)
                if call is None:
                    reason = "rejected"
                    break
            elif isinstance(frame, tw.Dtmf):
                if call is not None:
                    await call.on_dtmf(frame.digit)
            elif isinstance(frame, tw.Stop):
                break
            elif isinstance(frame, tw.UnknownEvent):
                log.info("frame_unknown_event", frame_event=frame.event[:40])
    except WebSocketDisconnect:
        pass
    except Exception as exc:  # a bug must end this call cleanly, not leave it running
        log.error("stream_failed", call_sid=call.sid if call else None, error=repr(exc)[:200])
    finally:
        if call is not None:
            await relay.finish(call, call.end_reason or reason)
        await output.close(1008 if reason == "rejected" else 1000)


async def _bind(relay: Relay, settings: Settings, start: tw.Start, output: StreamOutput) -> Call | None:
    token = settings.auth_token()
    if not start_is_bound(token, start, ttl_seconds=settings.stream_token_ttl_seconds):
        log.warning("stream_token_rejected", call_sid=start.call_sid)
        return None
    if not relay.spend_stream_token(start.custom_parameters.get("token", "")):
        log.warning("stream_token_reused", call_sid=start.call_sid)
        return None
    try:
        call = await relay.claim(caller_from_start(start))
    except DuplicateStreamError:
        log.warning("stream_duplicate", call_sid=start.call_sid)
        return None
    except StreamEndedError:
        log.warning("stream_for_ended_call", call_sid=start.call_sid)
        return None

    def end_with_socket() -> None:
        # The relay closed the socket (hang-up, fail-over): end the call now, not when the close handshake
        # finishes, so its model session and its MAX_LIVE_CALLS slot are freed at once.
        if not call.ended.is_set() and not relay.tasks.closed:
            relay.tasks.spawn(relay.finish(call, "caller_hung_up"), "finish-closed-stream")

    output.on_close = end_with_socket
    bind_call_sid(call.sid)
    started = time.perf_counter()
    await call.attach(output, start.stream_sid)
    log.info(
        "stream_started",
        call_sid=call.sid,
        preopened=call.timings.model_ready_at is not None,
        attach_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return call
