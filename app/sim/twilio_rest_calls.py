"""The simulated Twilio REST API's call resources: Calls (create, update, fetch), Recordings, Participants.

Recordings started here are kept in ``recordings`` until deleted (``DELETE .../Recordings/{sid}.json``, as
the retention sweep asks).

``link_caller`` makes a call update behave like Twilio's: new TwiML or ``Status=completed`` ends the linked
simulated caller's media stream (``stop`` frame, then close).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app.sim.twilio_rest_common import API_PREFIX, Admit, not_found, now_rfc2822
from app.sim.twilio_webhook import new_sid


@dataclass
class SimulatedCall:
    """A call the simulated account knows about."""

    sid: str
    status: str = "in-progress"
    to: str = "+14155550199"
    from_: str = "+14155550100"
    direction: str = "inbound"


class StreamEnder(Protocol):
    """What ``link_caller`` needs from a simulated caller: its call sid and a way to end its stream."""

    call_sid: str

    def hang_up(self) -> Awaitable[None]: ...


class CallsResource:
    """The calls one simulated account knows, and the routes that read and change them."""

    def __init__(self, account_sid: str, lock: threading.Lock) -> None:
        self.account_sid = account_sid
        self._lock = lock
        self._calls: dict[str, SimulatedCall] = {}
        self._conference_sids: dict[str, str] = {}
        self.recordings: set[str] = set()  # recording sids Twilio still stores (started, not deleted)
        self._linked: dict[str, tuple[StreamEnder, asyncio.AbstractEventLoop]] = {}
        self._pending_hangups: list[concurrent.futures.Future[None]] = []

    # ---- test controls -----------------------------------------------------------------------------

    def add(self, call_sid: str, *, status: str = "in-progress", **details: str) -> SimulatedCall:
        """Make a call known so requests about it succeed."""
        call = SimulatedCall(sid=call_sid, status=status, **details)
        with self._lock:
            self._calls[call_sid] = call
        return call

    def get(self, call_sid: str) -> SimulatedCall | None:
        """The call's current record, or None if unknown."""
        with self._lock:
            return self._calls.get(call_sid)

    def set_status(self, call_sid: str, status: str) -> None:
        """Change a known call's status."""
        with self._lock:
            self._calls[call_sid].status = status

    def link(self, caller: StreamEnder, loop: asyncio.AbstractEventLoop) -> None:
        """Register the caller's call; ending it over REST ends the caller's stream on ``loop``."""
        self.add(caller.call_sid)
        with self._lock:
            self._linked[caller.call_sid] = (caller, loop)

    def cancel_pending(self) -> None:
        """Cancel stream endings still in flight (the server is stopping)."""
        for pending in self._pending_hangups:
            pending.cancel()

    # ---- answers -----------------------------------------------------------------------------------

    def call_json(self, call: SimulatedCall) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}.json"
        now = now_rfc2822()
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": now,
            "date_updated": now,
            "to": call.to,
            "to_formatted": call.to,
            "from": call.from_,
            "from_formatted": call.from_,
            "phone_number_sid": None,
            "status": call.status,
            "start_time": now,
            "end_time": now if call.status == "completed" else None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "direction": call.direction,
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri,
            "subresource_uris": {"recordings": uri.replace(".json", "/Recordings.json")},
        }

    def _end_linked_stream(self, call_sid: str) -> None:
        with self._lock:
            linked = self._linked.pop(call_sid, None)
        if linked is not None:
            caller, loop = linked
            # Owned here and cancelled on exit; the coroutine itself runs on the caller's loop.
            self._pending_hangups.append(asyncio.run_coroutine_threadsafe(_await(caller.hang_up()), loop))

    def _update(self, call_sid: str, form: dict[str, str]) -> JSONResponse:
        with self._lock:
            call = self._calls.get(call_sid)
            if call is not None and form.get("Status") in {"completed", "canceled"}:
                call.status = "completed"
        if call is None:
            return not_found(call_sid)
        if {"Twiml", "Url"} & form.keys() or form.get("Status") in {"completed", "canceled"}:
            self._end_linked_stream(call_sid)
        return JSONResponse(self.call_json(call))

    def _new_outbound(self, form: dict[str, str]) -> SimulatedCall:
        call = SimulatedCall(
            sid=new_sid("CA"),
            status="queued",
            to=form.get("To", ""),
            from_=form.get("From", ""),
            direction="outbound-api",
        )
        with self._lock:
            self._calls[call.sid] = call
        return call

    def _recording_json(self, call_sid: str, form: dict[str, str]) -> dict[str, Any]:
        sid = new_sid("RE")
        with self._lock:
            self.recordings.add(sid)
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "call_sid": call_sid,
            "conference_sid": None,
            "api_version": "2010-04-01",
            "date_created": now_rfc2822(),
            "date_updated": now_rfc2822(),
            "start_time": now_rfc2822(),
            "duration": "-1",
            "price": None,
            "price_unit": "USD",
            "status": "in-progress",
            "channels": 2 if form.get("RecordingChannels") == "dual" else 1,
            "source": "StartCallRecordingAPI",
            "error_code": None,
            "track": form.get("RecordingTrack", "both"),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}/Recordings/{sid}.json",
        }

    def _participant_json(self, conference: str, call: SimulatedCall, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            conference_sid = self._conference_sids.setdefault(
                conference, conference if conference.startswith("CF") else new_sid("CF")
            )
        return {
            "account_sid": self.account_sid,
            "call_sid": call.sid,
            "conference_sid": conference_sid,
            "label": form.get("Label"),
            "call_sid_to_coach": form.get("CallSidToCoach"),
            "coaching": form.get("Coaching") == "true",
            "date_created": now_rfc2822(),
            "date_updated": now_rfc2822(),
            "end_conference_on_exit": form.get("EndConferenceOnExit") == "true",
            "start_conference_on_enter": form.get("StartConferenceOnEnter", "true") == "true",
            "muted": form.get("Muted") == "true",
            "hold": False,
            "status": "queued",
            "queue_time": "0",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Conferences/{conference_sid}"
            f"/Participants/{call.sid}.json",
        }

    # ---- routes ------------------------------------------------------------------------------------

    def register(self, app: FastAPI, admit: Admit) -> None:
        """Add the call routes to ``app``; ``admit`` records each request and applies the knobs."""
        calls_path = API_PREFIX + "/Calls"

        @app.post(calls_path + ".json")
        async def create_call(account_sid: str, request: Request) -> JSONResponse:
            form, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            return JSONResponse(self.call_json(self._new_outbound(form)), status_code=201)

        @app.post(calls_path + "/{call_sid}.json")
        async def update_call(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
            form, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            return self._update(call_sid, form)

        @app.get(calls_path + "/{call_sid}.json")
        async def fetch_call(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
            _, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            call = self.get(call_sid)
            if call is None:
                return not_found(call_sid)
            return JSONResponse(self.call_json(call))

        @app.post(calls_path + "/{call_sid}/Recordings.json")
        async def start_recording(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
            form, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            if self.get(call_sid) is None:
                return not_found(call_sid)
            return JSONResponse(self._recording_json(call_sid, form), status_code=201)

        @app.delete(API_PREFIX + "/Recordings/{recording_sid}.json", response_model=None)
        async def delete_recording(account_sid: str, recording_sid: str, request: Request) -> Response:
            _, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            with self._lock:
                if recording_sid not in self.recordings:
                    return not_found(recording_sid)
                self.recordings.discard(recording_sid)
            return Response(status_code=204)

        @app.post(API_PREFIX + "/Conferences/{conference}/Participants.json")
        async def add_participant(account_sid: str, conference: str, request: Request) -> JSONResponse:
            form, refusal = await admit(request, account_sid)
            if refusal is not None:
                return refusal
            call = self._new_outbound(form)
            return JSONResponse(self._participant_json(conference, call, form), status_code=201)


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable
