"""The call's model session: connect, configure, read events, and reconnect when the socket fails.

A drop (1006, 1011, 1001 at the 60-minute cap, a network error) is retried with bounded backoff; the new
session gets the same instructions and tools plus a condensed history and is told not to greet again, and
the caller hears a short filler instead of dead air. An authentication or quota error is not retried: the
call goes to a person, or gets an apology and a clean hang-up (`CallControl.fail_over`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from websockets.exceptions import InvalidStatus

from app.calls.events import CallNote
from app.calls.filler_audio import reconnect_filler_b64
from app.calls.model_events import on_model_event
from app.calls.responses import ResponseRequest
from app.calls.routing import choose_model
from app.realtime.session import LinkClosed, RealtimeLink, session_config
from app.twilio.messages import base64_decoded_length

if TYPE_CHECKING:
    from app.calls.call import Call

FATAL_HTTP_STATUSES = frozenset({401, 403, 404})
BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0)
RESUME_NOTE = (
    "The call is already in progress: do not greet the caller again. The conversation so far, most recent "
    "last:\n{history}"
)


class FatalModelError(Exception):
    """The model refused us for good (bad key, no quota): retrying cannot help."""


def instructions_for(call: Call) -> str:
    history = call.history + call.transcript.condensed()
    if not history:
        return call.prompts.instructions
    return call.prompts.instructions + "\n\n" + RESUME_NOTE.format(history="\n".join(history))


async def _open(call: Call, *, resumed: bool) -> RealtimeLink:
    if resumed and call.control.escalated:  # an emergency or a failed transfer since the session opened
        call.model = choose_model(call.settings, call.caller.from_number, escalated=True)
    try:
        link = await RealtimeLink.open(call.client, call.model)
    except InvalidStatus as exc:
        if exc.response.status_code in FATAL_HTTP_STATUSES:
            raise FatalModelError(f"http_{exc.response.status_code}") from None
        raise
    call.link = link
    config = session_config(call.settings, instructions=instructions_for(call), tools=call.tools_schemas())
    await link.send_json({"type": "session.update", "session": config})
    if not resumed:
        call.greeting = await call.say(call.greeting_instructions(), "greeting")
    elif not call.control.busy:
        await call.gate.request(ResponseRequest({"instructions": call.prompts.reconnected}, purpose="resume"))
    return link


async def run_model(call: Call) -> None:
    """Own the model socket for the whole call."""
    attempt = 0
    resumed = False
    while not call.ended.is_set():
        try:
            link = await _open(call, resumed=resumed)
            if not resumed:
                call.timings.model_ready_at = time.perf_counter()
            call.model_ready.set()
            await call.flush_pending_in()
            attempt = 0
            while True:
                await on_model_event(call, await link.receive())
        except FatalModelError as exc:
            await _give_up(call, str(exc))
            return
        except (LinkClosed, OSError, InvalidStatus, TimeoutError) as exc:
            code = getattr(exc, "code", None)
            await _read_last_errors(call)
            if call.fatal_model_error is not None:
                await _give_up(call, call.fatal_model_error)
                return
            if call.ended.is_set() or call.control.busy:
                return  # the call is ending or handed off; no new paid session
            if attempt >= call.settings.model_reconnect_attempts:
                await _give_up(call, f"reconnect_failed:{code}")
                return
        call.model_ready.clear()
        call.gate.reset()
        call.log.warning("model_socket_lost", code=code, attempt=attempt + 1)
        call.metrics.model_reconnects.inc()
        if attempt == 0:
            call.emit(
                CallNote(call_sid=call.sid, at=time.time(), tag="model_reconnected", detail={"code": code})
            )
            filler = reconnect_filler_b64()
            if call.attached and filler:
                await call.play("reconnect-filler", filler, base64_decoded_length(filler))
                await call.play("reconnect-filler", "", 0)  # its closing mark
        await asyncio.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
        attempt += 1
        resumed = True


async def _read_last_errors(call: Call) -> None:
    """A closed socket may still hold the `error` that explains the close (e.g. a bad key); read it."""
    link = call.link
    if link is None:
        return
    try:
        async with asyncio.timeout(0.5):
            while True:
                event = await link.receive()
                if event["type"] == "error":
                    await on_model_event(call, event)
    except (LinkClosed, OSError, TimeoutError):
        pass


async def _give_up(call: Call, why: str) -> None:
    call.log.error("model_unavailable", why=why)
    call.metrics.model_failed(why)
    call.emit(CallNote(call_sid=call.sid, at=time.time(), tag="model_failed", detail={"why": why}))
    if call.link is not None:
        await call.link.close()
    if not call.attached:
        try:
            async with asyncio.timeout(call.settings.preopen_ttl_seconds):
                await call.attached_event.wait()
        except TimeoutError:
            return  # nobody to tell: the relay's TTL closes the prepared call
    await call.control.fail_over()
