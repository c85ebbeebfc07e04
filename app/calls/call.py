"""One phone call: the caller's stream on one side, the model's session on the other.

The call knows neither wire format in detail: the Twilio edge hands it parsed frames and an output to write
frames to; the model edge is a `RealtimeLink` of JSON events. The call owns the session's lifetime (opened at
the webhook, before the stream exists, so the greeting is generated while Twilio connects), barge-in, playback
accounting and the transcript. Its helpers live beside it: `model_runner` (connect, reconnect),
`tool_runner` (tools and fillers), `control` (hang-up, transfer, fail-over), `limits` (cap, idle) and
`caller_audio` (the caller's audio on its way to the model).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any, Protocol

from openai import AsyncOpenAI

from app.calls import model_runner
from app.calls.caller import CallerInfo
from app.calls.caller_audio import CallerAudio
from app.calls.consent import NOTICE, decide_consent
from app.calls.control import CallControl
from app.calls.events import CallEnded, CallEvent, CallEventSink, CallHeartbeat, CallStarted
from app.calls.limits import IdleClock, watch_limits
from app.calls.playback import PlaybackTracker
from app.calls.prompts import Prompts
from app.calls.responses import ResponseGate, ResponseRequest
from app.calls.tasks import TaskOwner
from app.calls.timings import CallTimings
from app.calls.transcript import Transcript
from app.functions.call_control import CONTROL_TOOLS
from app.functions.registry import ToolRegistry
from app.lib.audio import OutboundConverter
from app.logs import get_logger
from app.metrics import RelayMetrics
from app.realtime.session import BYTES_PER_MS, LinkClosed, RealtimeLink
from app.settings import Settings
from app.twilio import messages as tw
from app.twilio.rest import AsyncTwilioRest

log = get_logger(__name__)

SEGMENT_SEQ_STRIDE = 1000  # transcript seq numbers of a call's later segments (after a failed transfer)


class TwilioOutput(Protocol):
    """Where the call writes Twilio frames (the stream's WebSocket)."""

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int = 1000) -> None: ...


class Call:
    """The live state of one call. All methods run on the relay's event loop."""

    def __init__(
        self,
        caller: CallerInfo,
        *,
        settings: Settings,
        client: AsyncOpenAI,
        tools: ToolRegistry,
        sink: CallEventSink,
        prompts: Prompts,
        model: str,
        rest: AsyncTwilioRest | None = None,
        history: list[str] | None = None,
        metrics: RelayMetrics,
    ) -> None:
        self.caller = caller
        self.metrics = metrics
        self.sid = caller.call_sid
        self.settings = settings
        self.model = model
        self.client = client
        self.tools = tools
        self.prompts = prompts
        self.history = history or []
        self._sink = sink
        self._format = settings.realtime_audio_format
        self.tasks = TaskOwner(f"call:{self.sid[-6:]}")
        self.link: RealtimeLink | None = None
        self.gate = ResponseGate(self.send_model_text)
        self.playback = PlaybackTracker()
        self.transcript = Transcript(self.sid, self, seq_base=(caller.segment - 1) * SEGMENT_SEQ_STRIDE)
        self.timings = CallTimings(prepared_at=time.perf_counter())
        self.control = CallControl(self, rest)
        self.idle = IdleClock()
        self.consent = decide_consent(
            settings.recording_consent, caller.caller_state, recording_enabled=settings.recording_enabled
        )
        self.twilio: TwilioOutput | None = None
        self.stream_sid: str | None = None
        self.attached_event = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.session_id: str | None = None
        self.model_ready = asyncio.Event()
        self.greeting: ResponseRequest | None = None
        self.drained = asyncio.Event()
        self.drained.set()
        self.model_items: set[str] = set()
        self.dropped_items: set[str] = set()
        self.dropped_responses: set[str] = set()
        self.responses_with_audio: set[str] = set()
        self.tool_calls_running = 0
        self.tool_seq = (caller.segment - 1) * SEGMENT_SEQ_STRIDE  # tool seqs, like turns, never collide
        self.tool_log: list[str] = []
        self.fatal_model_error: str | None = None
        self.usage: dict[str, int] = {}
        self._pending_out: list[tuple[str, str, int]] = []
        self.caller_audio = CallerAudio(
            self._format,
            self.model_ready,
            self.send_model_text,
            on_overflow=metrics.dropped["inbound_overflow"].inc,
        )
        self._outbound = OutboundConverter() if self._format == "pcm16" else None
        self._audio_out_bytes = 0
        self.caller_speech_started_at: float | None = None
        self.log = log.bind(call_sid=self.sid)

    # --- lifecycle -------------------------------------------------------------------------------------
    def emit(self, event: CallEvent) -> None:
        """Hand an event to the sink (never blocks, never raises)."""
        self._sink.emit(event)

    def tools_schemas(self) -> list[dict[str, Any]]:
        """Business tools plus the call-control tools."""
        return self.tools.schemas() + CONTROL_TOOLS

    def start(self) -> None:
        """Open the model session now; returns at once."""
        self.tasks.spawn(model_runner.run_model(self), "model")

    @property
    def attached(self) -> bool:
        return self.twilio is not None

    def greeting_instructions(self) -> str:
        """Greeting (with the recording notice where required), or the resume line after a hand-off."""
        if self.caller.resume:
            return self.prompts.resume_instructions(self.caller.resume)
        return self.prompts.greeting_instructions(NOTICE if self.consent.notice_required else "")

    async def attach(self, twilio: TwilioOutput, stream_sid: str) -> None:
        """The caller's stream started: flush the greeting audio generated so far."""
        self.twilio = twilio
        self.stream_sid = stream_sid
        self.timings.stream_started_at = time.perf_counter()
        self.attached_event.set()
        self.emit(
            CallStarted(
                call_sid=self.sid,
                from_number=self.caller.from_number,
                to_number=self.caller.to_number,
                caller_state=self.caller.caller_state,
                model=self.model,
                started_at=time.time(),
                segment=self.caller.segment,
            )
        )
        self.tasks.spawn(self._heartbeat(), "heartbeat")
        self.tasks.spawn(watch_limits(self), "limits")
        self.tasks.spawn(self.control.after_greeting(), "consent")
        # Keep each frame queued until it is sent, so deltas arriving meanwhile queue behind it in order.
        while self._pending_out:
            item_id, payload, nbytes = self._pending_out[0]
            await self._send_audio(twilio, stream_sid, item_id, payload, nbytes)
            if self._pending_out:
                self._pending_out.pop(0)

    async def end(self, reason: str) -> None:
        """Finish the call once: record what was heard, close the model socket, stop every task."""
        if self.ended.is_set():
            return
        self.ended.set()
        self.end_reason = self.control.end_reason or reason
        self.gate.drop_queued()
        now = time.monotonic()
        self.transcript.finish(lambda item: self.playback.heard_ms(item, now))
        if self.attached:
            self.control.record_consent_if_pending()
            ended = CallEnded(
                call_sid=self.sid,
                ended_at=time.time(),
                end_reason=self.end_reason,
                audio_in_seconds=self.caller_audio.received_bytes / 8000,
                audio_out_seconds=self._audio_out_bytes / 8000,
                usage=dict(self.usage),
                segment=self.caller.segment,
                model=self.model,
            )
            self.emit(ended)
            self.metrics.call_cost(self.model, ended)
        if self.link is not None:
            await self.link.close()
        await self.tasks.cancel_all()
        self.log.info("call_ended", reason=self.end_reason, attached=self.attached)

    async def hang_up_stream(self, code: int = 1000) -> None:
        """Close the media stream; with nothing after `<Connect>`, Twilio then ends the call."""
        if self.twilio is not None:
            await self.twilio.close(code)

    # --- the model side --------------------------------------------------------------------------------
    async def send_model_text(self, text: str) -> None:
        if self.link is None:
            raise LinkClosed(None, "not connected")
        await self.link.send_text(text)

    async def send_model_json(self, event: dict[str, Any]) -> None:
        """Send an event; on a closed socket the model task sees the loss and handles it."""
        if self.link is not None:
            with contextlib.suppress(LinkClosed):
                await self.link.send_json(event)

    async def say(self, instructions: str, purpose: str) -> ResponseRequest:
        """Have the agent speak (per-response instructions); returns the queued request."""
        return await self.gate.request(ResponseRequest({"instructions": instructions}, purpose=purpose))

    async def wait_heard(self, request: ResponseRequest | None, timeout: float) -> bool:
        """Until `request` is done (or, with None, every response) and its audio has played."""
        try:
            async with asyncio.timeout(timeout):
                if request is None:
                    await self.gate.wait_idle()
                else:
                    await request.finished.wait()
                await asyncio.sleep(0)  # let the last delta of the response reach playback
                await self.drained.wait()
                return True
        except TimeoutError:
            return False

    # --- agent audio -----------------------------------------------------------------------------------
    async def on_audio_delta(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id"))
        if item_id in self.dropped_items or event.get("response_id") in self.dropped_responses:
            self.metrics.dropped["interrupted_audio"].inc()
            return  # a late delta of an interrupted reply must not refill Twilio's buffer (trap 5)
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        if self.timings.first_delta_at is None:
            self.timings.first_delta_at = time.perf_counter()
        self.model_items.add(item_id)
        self.responses_with_audio.add(str(event.get("response_id")))
        if self._outbound is None:
            nbytes = tw.base64_decoded_length(delta)
            self.transcript.agent_audio(item_id, nbytes // BYTES_PER_MS["pcmu"])
            await self.play(item_id, delta, nbytes)
            return
        pcm = base64.b64decode(delta)
        self.transcript.agent_audio(item_id, len(pcm) // BYTES_PER_MS["pcm16"])
        mulaw = self._outbound.convert(pcm)
        if mulaw:
            await self.play(item_id, base64.b64encode(mulaw).decode(), len(mulaw))

    async def flush_outbound(self, item_id: str) -> None:
        """End of an item's audio: emit what the pcm16 converter holds, then the item's closing mark."""
        if item_id in self.dropped_items:
            return
        if self._outbound is not None:
            tail = self._outbound.flush()
            if tail:
                await self.play(item_id, base64.b64encode(tail).decode(), len(tail))
        await self.play(item_id, "", 0)

    async def play(self, item_id: str, payload_b64: str, nbytes: int) -> None:
        """Send agent audio to the caller (held until the stream has a streamSid, trap 15)."""
        self.drained.clear()
        twilio, stream_sid = self.twilio, self.stream_sid
        if twilio is None or stream_sid is None or self._pending_out:
            self._pending_out.append((item_id, payload_b64, nbytes))
            return
        await self._send_audio(twilio, stream_sid, item_id, payload_b64, nbytes)

    async def _send_audio(
        self, twilio: TwilioOutput, stream_sid: str, item_id: str, payload_b64: str, nbytes: int
    ) -> None:
        if self.timings.awaiting_audio:
            self.timings.audio_sent(nbytes, self.metrics)
        if nbytes == 0:  # the end of an item's audio: its closing mark
            mark = self.playback.end_of_item()
        else:
            mark = self.playback.on_sent(item_id, nbytes, time.monotonic())
            self._audio_out_bytes += nbytes
            await twilio.send_text(tw.media_message(stream_sid, payload_b64))
        if mark is not None:
            await twilio.send_text(tw.mark_message(stream_sid, mark))

    def has_queued_audio(self, item_id: str) -> bool:
        """True while audio of `item_id` waits for the stream to start."""
        return any(pending[0] == item_id for pending in self._pending_out)

    def _update_drained(self) -> None:
        if not self.playback.is_playing and not self._pending_out:
            self.drained.set()

    # --- barge-in --------------------------------------------------------------------------------------
    async def barge_in(self) -> None:
        """Caller started speaking: stop the agent where the caller stopped hearing it."""
        started = time.perf_counter()
        self.caller_speech_started_at = time.time()
        now = time.monotonic()
        if self.playback.is_playing or self._pending_out:
            item_id = self.playback.current_item
            heard_ms = self.playback.heard_ms(item_id, now) if item_id else 0
            sent_ms = self.playback.sent_ms(item_id) if item_id else 0
            if self.twilio is not None and self.stream_sid is not None:
                await self.twilio.send_text(tw.clear_message(self.stream_sid))
            self.timings.barge_in_reacted(started, self.metrics)
            self.playback.on_clear(now)
            for pending_item, _, _ in self._pending_out:
                self.dropped_items.add(pending_item)
            self._pending_out.clear()
            if self._outbound is not None:
                self._outbound.reset()
            for pending_item in self.transcript.pending_agent_items():
                if pending_item != item_id:
                    self.dropped_items.add(pending_item)
                    self.transcript.agent_discarded(pending_item)
            if item_id is not None:
                self.dropped_items.add(item_id)
                self.transcript.agent_interrupted(item_id, heard_ms)
                if sent_ms > 0 and item_id in self.model_items:
                    truncate = {
                        "type": "conversation.item.truncate",
                        "item_id": item_id,
                        "content_index": 0,
                        "audio_end_ms": min(heard_ms, sent_ms),
                    }
                    await self.send_model_json(truncate)
            self._update_drained()
            self.log.info("barge_in", heard_ms=heard_ms, sent_ms=sent_ms)
        cancelled = await self.gate.cancel_active() if self.link is not None else None
        if cancelled is not None:
            self.dropped_responses.add(cancelled)
        self.control.on_barge_in()

    # --- caller side -----------------------------------------------------------------------------------
    async def on_media(self, media: tw.Media) -> None:
        """A 20 ms frame of caller audio (see `caller_audio`)."""
        await self.caller_audio.on_media(media)

    async def flush_pending_in(self) -> None:
        """Send the caller audio held while the model socket was opening."""
        await self.caller_audio.flush()

    async def on_mark(self, name: str) -> None:
        """Twilio echoed a mark: playback reached it (unless it is stale)."""
        mark = self.playback.on_mark(name, time.monotonic())
        if mark is not None and self.playback.last_mark_for(mark.item_id) is None:
            self.transcript.agent_played(mark.item_id)
        self._update_drained()

    async def on_dtmf(self, digit: str) -> None:
        """A keypress: `0` reaches a person; any other digit reaches the model as caller input."""
        self.idle.caller_active(speaking=False)
        if digit == "0":
            self.tasks.spawn(self.control.transfer_on_request("pressed_zero"), "transfer")
            return
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": f"[The caller pressed the {digit} key]"}],
        }
        await self.send_model_json({"type": "conversation.item.create", "item": item})
        await self.gate.request(ResponseRequest(purpose="dtmf"))

    # --- bookkeeping -----------------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        while True:
            self.emit(CallHeartbeat(call_sid=self.sid, at=time.time()))
            await asyncio.sleep(self.settings.heartbeat_seconds)
