"""What the agent does to the call itself: hang up, hand off to a person, record, and fail over.

Each action waits until the caller has *heard* the line that announces it (the response is done and its last
mark has come back, with a timeout, trap 7), and only then acts over Twilio's REST API. REST requests are
awaited in the action's own task, never on the audio path.

Warm transfer: the caller's call is redirected to `<Dial answerOnBridge><Number url=whisper>`. The caller
keeps hearing ringing while the person who answers hears a spoken brief (who is calling, why, what was done)
and presses 1 to take the call. If nobody answers, the line is busy, or the person declines, the caller is
sent back to the agent (a fresh `<Connect><Stream>`), which apologises and offers to take a message. The
`<Dial>`+whisper design needs no conference bookkeeping: every step carries what it needs in Twilio's own
signed webhooks (see app/twilio/transfer.py); only the conversation so far is shared, written to the
relay's history store (`app/calls/history.py`) when the transfer starts, for whichever instance the caller
comes back to. With nobody to take an emergency, the caller is told to dial the emergency number and staff
are alerted at once (a `staff_alert` note the workers deliver mid-call).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TYPE_CHECKING, Any

from app.calls.consent import NOTICE
from app.calls.consent_notice import NoticeTracker, give_notice
from app.calls.events import CallNote, ConsentDecision, RecordingStarted
from app.calls.tool_runner import send_tool_output
from app.twilio.rest import AsyncTwilioRest, TwilioRestError
from app.twilio.twiml import (
    CALL_STATUS_PATH,
    RECORDING_STATUS_PATH,
    apology_twiml,
    public_url,
    transfer_twiml,
)

if TYPE_CHECKING:
    from app.calls.call import Call
    from app.calls.history import HistoryStore

# Words that mean a medical emergency; a match hands the call to a person at once (belt and braces: the
# system prompt tells the model the same).
EMERGENCY_WORDS = re.compile(
    r"\b(can'?t breathe|cannot breathe|not breathing|chest pain|heart attack|stroke|unconscious|"
    r"passed out|bleeding (?:a lot|heavily|badly)|overdose|suicid\w*|kill myself|anaphyla\w*)\b",
    re.IGNORECASE,
)


class CallControl:
    """Hang-up, transfer, consent and fail-over for one call."""

    def __init__(self, call: Call, rest: AsyncTwilioRest | None) -> None:
        self.call = call
        self.rest = rest
        self.state: str | None = None  # "hanging_up" | "transferring"
        self.end_reason: str | None = None
        self._cancelable = False
        self._consent_recorded = False
        self.recording_sid: str | None = None
        self.escalated = False  # an emergency or a failed transfer: later sessions get the full model
        self.history_store: HistoryStore | None = None  # set by the relay
        self.notice = NoticeTracker()

    @property
    def busy(self) -> bool:
        return self.state is not None

    # --- tools -----------------------------------------------------------------------------------------
    async def on_tool(self, call_id: str, name: str, arguments: dict[str, Any], *, spoke: bool) -> None:
        """A call-control function call; `spoke` says the model's reply carrying it said something."""
        if name == "end_call":
            goodbye = None if spoke else self.call.prompts.line("goodbye")  # hung up without a word
            await self.hang_up("agent_hung_up", goodbye=goodbye, cancelable=True)
        elif name == "transfer_to_human":
            reason = str(arguments.get("reason") or "other")
            summary = str(arguments.get("summary") or "")
            await self.transfer(reason, summary, call_id=call_id, model_spoke=spoke)
        elif name == "take_message":
            detail = {
                k: str(v) for k, v in arguments.items() if k in ("message", "caller_name", "callback_number")
            }
            self.call.emit(CallNote(call_sid=self.call.sid, at=time.time(), tag="message", detail=detail))
            await send_tool_output(self.call, call_id, {"saved": True}, respond=True)

    # --- hang-up ---------------------------------------------------------------------------------------
    async def hang_up(self, reason: str, *, goodbye: str | None = None, cancelable: bool = False) -> None:
        """Let the goodbye play to its end, then complete the call over REST."""
        if self.busy:
            return
        self.state = "hanging_up"
        self._cancelable = cancelable
        call = self.call
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(call.settings.goodbye_timeout_seconds):
                await call.gate.wait_idle()  # let the reply in progress finish first
        request = await call.say(goodbye, "goodbye") if goodbye else None
        await call.wait_heard(request, call.settings.goodbye_timeout_seconds)
        if self.state != "hanging_up":
            return  # the caller spoke over the goodbye: stay on the line
        self.end_reason = reason
        call.log.info("hanging_up", reason=reason)
        await self._complete_call()

    def on_barge_in(self) -> None:
        if self.state == "hanging_up" and self._cancelable and self.end_reason is None:
            self.state = None
            self.call.log.info("hang_up_cancelled_by_caller")

    async def _complete_call(self) -> None:
        if self.rest is not None:
            try:
                await self.rest.complete_call(self.call.sid)
            except TwilioRestError as exc:
                self.call.log.warning("rest_complete_failed", status=exc.status, code=exc.code)
        # Closing the stream ends <Connect>; with no verbs after it Twilio hangs up even if REST failed.
        await self.call.hang_up_stream()

    # --- transfer --------------------------------------------------------------------------------------
    async def transfer_on_request(self, why: str) -> None:
        """The caller asked for a person without the model (pressed 0)."""
        await self.call.barge_in()  # stop whatever the agent was saying
        await self.transfer("caller_asked", f"The caller {why.replace('_', ' ')} to reach a person.")

    def screen_caller_words(self, text: str) -> None:
        """An emergency in the caller's words is handed to a person at once."""
        if not self.busy and EMERGENCY_WORDS.search(text):
            summary = "Possible emergency: the caller described an urgent medical situation."
            self.call.tasks.spawn(self.transfer("emergency", summary), "emergency")

    async def transfer(
        self, reason: str, summary: str, *, call_id: str | None = None, model_spoke: bool = False
    ) -> None:
        """Say the hand-off line, let it be heard, then redirect the call to the person."""
        call = self.call
        if self.busy:
            return
        emergency = reason == "emergency"
        if emergency:
            self.escalated = True
            call.emit(CallNote(call_sid=call.sid, at=time.time(), tag="emergency", detail={}))
        number = call.settings.human_transfer_number
        if not number or self.rest is None or not call.settings.public_base_url:
            call.emit(
                CallNote(call_sid=call.sid, at=time.time(), tag="transfer_failed", detail={"why": "no_human"})
            )
            await self._voice_failure(call_id, "no_human_available", emergency=emergency)
            return
        self.state = "transferring"
        segment = call.caller.segment
        detail = {"reason": reason, "segment": segment}
        call.emit(CallNote(call_sid=call.sid, at=time.time(), tag="transfer_started", detail=detail))
        await self._save_history()
        if not model_spoke:
            if call_id is None:
                await call.gate.cancel_active()
            line = call.prompts.line("emergency_handoff" if emergency else "handoff")
            request = await call.say(line, "handoff")
            await call.wait_heard(request, call.settings.goodbye_timeout_seconds)
        else:
            await call.wait_heard(None, call.settings.goodbye_timeout_seconds)  # the model's own line
        twiml = transfer_twiml(call.settings, call.caller, number, self._brief(reason, summary))
        self.end_reason = "transferred"  # Twilio may stop the stream before the REST answer arrives
        try:
            redirected = await self.rest.redirect_call(call.sid, twiml, status_callback=self._status_url())
        except TwilioRestError as exc:
            call.log.warning("transfer_rest_failed", status=exc.status, code=exc.code)
            redirected = False
        if redirected:
            call.log.info("transferred", reason=reason)
            return  # Twilio stops the stream; the stream handler ends the call
        self.end_reason = None
        self.state = None
        self.escalated = True
        call.emit(CallNote(call_sid=call.sid, at=time.time(), tag="transfer_failed", detail={"why": "rest"}))
        detail = {"status": "failed", "segment": segment}
        call.emit(CallNote(call_sid=call.sid, at=time.time(), tag="transfer_result", detail=detail))
        await self._voice_failure(call_id, "transfer_failed", emergency=emergency)

    def _status_url(self) -> str:
        """Twilio's status callback for the call: its final status says the phone call is over."""
        return public_url(self.call.settings, CALL_STATUS_PATH)

    async def _save_history(self) -> None:
        """Keep the conversation where the relay instance the caller comes back to can read it."""
        if self.history_store is not None:
            call = self.call
            await self.history_store.save(call.sid, call.history + call.transcript.condensed())

    async def _voice_failure(self, call_id: str | None, code: str, *, emergency: bool) -> None:
        """Nobody can take the call. In an emergency the caller is told to dial the emergency number, never
        offered a message, and staff are alerted at once; otherwise the agent offers to take a message."""
        call = self.call
        if emergency:
            why = "emergency_no_human" if code == "no_human_available" else "emergency_transfer_failed"
            call.emit(CallNote(call_sid=call.sid, at=time.time(), tag="staff_alert", detail={"why": why}))
            number = call.settings.emergency_number
            message = (
                f"Nobody can take the call. Tell the caller to hang up now and dial {number}, and that the "
                "staff have been alerted. Do not offer to take a message."
            )
            line = "emergency_no_human"
        else:
            message = "Nobody can take the call right now. Offer to take a message."
            line = "no_human" if code == "no_human_available" else "transfer_failed"
        if call_id is not None:
            output = {"error": {"code": code, "message": message}}
            await send_tool_output(call, call_id, output, respond=True)
        else:
            await call.say(call.prompts.line(line), line)

    def _brief(self, reason: str, summary: str) -> str:
        caller = self.call.caller.from_number or "an unknown number"
        digits = " ".join(caller.lstrip("+")) if caller[:1] == "+" else caller
        done = "; ".join(self.call.tool_log[-3:])
        parts = [f"Call from {digits}.", f"Reason: {reason.replace('_', ' ')}.", summary.strip()]
        if done:
            parts.append(f"Already done: {done}.")
        return " ".join(part for part in parts if part)[:600]

    # --- model unavailable -----------------------------------------------------------------------------
    async def fail_over(self) -> None:
        """The model is gone for good: hand the caller to a person, or apologise and hang up cleanly."""
        call = self.call
        if self.busy:
            return
        self.state = "transferring"
        number = call.settings.human_transfer_number
        self.end_reason = "failed"
        if self.rest is not None:
            try:
                twiml = apology_twiml(call.settings, number)
                if await self.rest.redirect_call(call.sid, twiml, status_callback=self._status_url()):
                    self.end_reason = "transferred" if number else "failed"
                    return
            except TwilioRestError as exc:
                call.log.warning("fail_over_rest_failed", status=exc.status, code=exc.code)
        await call.hang_up_stream(1011)

    # --- consent and recording -------------------------------------------------------------------------
    async def after_greeting(self) -> None:
        """Record the consent decision once the notice was really heard (see `consent_notice`), then start
        recording if enabled; a notice never heard means no recording."""
        call = self.call
        if call.caller.resume:
            self._consent_recorded = True  # decided, announced and recorded in the call's first segment
            return
        consent = call.consent
        heard_at: float | None = None
        if consent.notice_required:
            await call.model_ready.wait()
            heard_at = await give_notice(call, NOTICE, self.notice)
            if heard_at is None:
                return  # never heard: `record_consent_if_pending` notes it at the end, and nothing records
        self._record_consent(heard_at)
        if call.settings.recording_enabled and self.rest is not None:
            try:
                callback = public_url(call.settings, RECORDING_STATUS_PATH)
                self.recording_sid = await self.rest.start_recording(call.sid, callback)
            except TwilioRestError as exc:
                call.log.warning("recording_start_failed", status=exc.status, code=exc.code)
                return
            if self.recording_sid:
                call.emit(
                    RecordingStarted(
                        call_sid=call.sid, recording_sid=self.recording_sid, started_at=time.time()
                    )
                )

    def _record_consent(self, heard_at: float | None) -> None:
        if self._consent_recorded:
            return
        self._consent_recorded = True
        call = self.call
        call.emit(
            ConsentDecision(
                call_sid=call.sid,
                mode=call.settings.recording_consent,
                caller_state=call.caller.caller_state,
                notice_required=call.consent.notice_required,
                reason=call.consent.reason,
                notice_played_at=heard_at,
            )
        )

    def record_consent_if_pending(self) -> None:
        """At the end of a call whose notice never played: keep the decision, with no play time."""
        self._record_consent(None)
