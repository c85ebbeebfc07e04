"""A simulated Twilio REST API (the 2010-04-01 Calls/Recordings/Participants subset the relay uses).

Recordings started here are kept in ``recordings`` until deleted (``DELETE .../Recordings/{sid}.json``, as
the retention sweep asks).

It records every request, answers with JSON shaped like Twilio's, checks HTTP basic auth (account sid +
auth token) and returns Twilio's error JSON (``{"code": 20404, ...}``) for unknown calls, so the real
``twilio`` SDK parses its answers and raises ``TwilioRestException`` exactly as against Twilio.

Pointing the ``twilio`` SDK at it (the relay's ``TWILIO_API_BASE_URL`` uses the same mechanism): every
``/2010-04-01`` resource hangs off the ``client.api`` domain, whose ``base_url`` attribute
(``"https://api.twilio.com"``) is read on each request, so after

    client = Client(account_sid, auth_token)            # or http_client=AsyncTwilioHttpClient()
    client.api.base_url = "http://127.0.0.1:PORT"        # any scheme://host[:port], no trailing path

``client.calls(sid).update(...)``, ``client.calls.create(...)``, ``client.calls(sid).recordings.create(...)``
and ``client.conferences(name).participants.create(...)`` (sync and ``*_async``) all go to that origin.
``twilio_client_for`` below does exactly this. One caveat: the SDK rewrites hostnames when an edge or
region is configured (``TWILIO_EDGE``/``TWILIO_REGION`` in the environment, or ``edge=``/``region=``),
which would mangle a local address, so leave both unset when overriding the base URL.

The server runs uvicorn on 127.0.0.1 (a free port) in a background thread, so blocking SDK calls from the
test's own thread or event loop work. ``link_caller`` makes a call update behave like Twilio's: new TwiML or
``Status=completed`` ends the caller's media stream (``stop`` frame, then close).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from twilio.rest import Client

from app.sim.twilio_webhook import new_sid as new_sid

API_PREFIX = "/2010-04-01/Accounts/{account_sid}"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulated API received. ``form`` keeps the last value of each field, ``multi`` all."""

    method: str
    path: str
    form: dict[str, str]
    multi: dict[str, list[str]] = field(default_factory=dict)


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


def twilio_client_for(base_url: str, account_sid: str, auth_token: str, **kwargs: Any) -> Client:
    """A real ``twilio.rest.Client`` whose 2010-04-01 API requests go to ``base_url``."""
    client = Client(account_sid, auth_token, **kwargs)
    client.api.base_url = base_url.rstrip("/")
    return client


def _now_rfc2822() -> str:
    return format_datetime(datetime.now(UTC))


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


class SimulatedTwilioRest:
    """Serve the simulated API in a background thread; use as a (sync or async) context manager."""

    def __init__(self, account_sid: str, auth_token: str, *, port: int = 0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._calls: dict[str, SimulatedCall] = {}
        self._conference_sids: dict[str, str] = {}
        self.recordings: set[str] = set()  # recording sids Twilio still stores (started, not deleted)
        self._linked: dict[str, tuple[StreamEnder, asyncio.AbstractEventLoop]] = {}
        self._pending_hangups: list[concurrent.futures.Future[None]] = []
        self._failure_status: int | None = None
        self._failures_left: int | None = None
        self._delay_seconds = 0.0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._requested_port = port  # 0 = any free port
        self._port = 0
        self.app = self._build_app()

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if not self._port:
            raise RuntimeError("the simulated Twilio REST API is not running")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        """Bind the port (default: a free one) and serve until ``stop``; returns once it accepts connections.

        Raises ``OSError`` when the requested port is taken.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._requested_port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sim-twilio-rest", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulated Twilio REST API did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server and wait for its thread; cancels stream endings still in flight."""
        for pending in self._pending_hangups:
            pending.cancel()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> SimulatedTwilioRest:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> SimulatedTwilioRest:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    # ---- test controls ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def add_call(self, call_sid: str, *, status: str = "in-progress", **details: str) -> SimulatedCall:
        """Make a call known (e.g. the simulated caller's inbound call) so requests about it succeed."""
        call = SimulatedCall(sid=call_sid, status=status, **details)
        with self._lock:
            self._calls[call_sid] = call
        return call

    def call(self, call_sid: str) -> SimulatedCall | None:
        """The call's current record, or None if unknown."""
        with self._lock:
            return self._calls.get(call_sid)

    def set_status(self, call_sid: str, status: str) -> None:
        """Change a known call's status (``completed``, ``in-progress``, ...)."""
        with self._lock:
            self._calls[call_sid].status = status

    def set_failure(self, status: int | None = 500, *, times: int | None = None) -> None:
        """Answer the next ``times`` requests (all if None) with ``status``; ``status=None`` heals."""
        with self._lock:
            self._failure_status = status
            self._failures_left = times

    def set_delay(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (a slow Twilio)."""
        self._delay_seconds = seconds

    def link_caller(self, caller: StreamEnder) -> None:
        """Register the caller's call; an update with new TwiML/Url or ``Status=completed`` ends its stream.

        Must be called from the event loop the caller runs on.
        """
        self.add_call(caller.call_sid)
        with self._lock:
            self._linked[caller.call_sid] = (caller, asyncio.get_running_loop())

    async def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 5.0
    ) -> RecordedRequest:
        """Wait until a recorded request matches ``predicate``; raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                for recorded in self.requests:
                    if predicate(recorded):
                        return recorded
                await asyncio.sleep(0.02)

    # ---- HTTP side ---------------------------------------------------------------------------------

    def _authorised(self, request: Request, account_sid: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        header = request.headers.get("authorization", "")
        return secrets.compare_digest(header, f"Basic {expected}") and account_sid == self.account_sid

    def _take_failure(self) -> int | None:
        with self._lock:
            if self._failure_status is None:
                return None
            if self._failures_left is not None:
                self._failures_left -= 1
                if self._failures_left <= 0:
                    status, self._failure_status = self._failure_status, None
                    return status
            return self._failure_status

    def _call_json(self, call: SimulatedCall) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}.json"
        now = _now_rfc2822()
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

    def _update_call(self, call_sid: str, form: dict[str, str]) -> JSONResponse:
        with self._lock:
            call = self._calls.get(call_sid)
            if call is not None and form.get("Status") in {"completed", "canceled"}:
                call.status = "completed"
        if call is None:
            return _error(404, 20404, f"The requested resource {call_sid} was not found")
        if {"Twiml", "Url"} & form.keys() or form.get("Status") in {"completed", "canceled"}:
            self._end_linked_stream(call_sid)
        return JSONResponse(self._call_json(call))

    async def _admit(self, request: Request, account_sid: str) -> tuple[dict[str, str], JSONResponse | None]:
        """Record the request, then apply the delay, auth and failure knobs; returns (form, refusal)."""
        form_data = await request.form()
        multi: dict[str, list[str]] = {}
        for key, value in form_data.multi_items():
            multi.setdefault(key, []).append(str(value))
        form = {key: values[-1] for key, values in multi.items()}
        with self._lock:
            self._requests.append(RecordedRequest(request.method, request.url.path, form, multi))
        if self._delay_seconds:
            await asyncio.sleep(self._delay_seconds)
        if not self._authorised(request, account_sid):
            return form, _error(401, 20003, "Authenticate")
        failure = self._take_failure()
        if failure is not None:
            return form, _error(failure, 20500, "Internal Server Error (simulated)")
        return form, None

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        calls_path = API_PREFIX + "/Calls"

        @app.post(calls_path + ".json")
        async def create_call(account_sid: str, request: Request) -> JSONResponse:
            form, refusal = await self._admit(request, account_sid)
            if refusal is not None:
                return refusal
            call = SimulatedCall(
                sid=new_sid("CA"),
                status="queued",
                to=form.get("To", ""),
                from_=form.get("From", ""),
                direction="outbound-api",
            )
            with self._lock:
                self._calls[call.sid] = call
            return JSONResponse(self._call_json(call), status_code=201)

        @app.post(calls_path + "/{call_sid}.json")
        async def update_call(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
            form, refusal = await self._admit(request, account_sid)
            if refusal is not None:
                return refusal
            return self._update_call(call_sid, form)

        @app.get(calls_path + "/{call_sid}.json")
        async def fetch_call(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
            _, refusal = await self._admit(request, account_sid)
            if refusal is not None:
                return refusal
            call = self.call(call_sid)
            if call is None:
                return _error(404, 20404, f"The requested resource {call_sid} was not found")
            return JSONResponse(self._call_json(call))

        @app.post(calls_path + "/{call_sid}/Recordings.json")
        async def start_recording(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
            form, refusal = await self._admit(request, account_sid)
            if refusal is not None:
                return refusal
            if self.call(call_sid) is None:
                return _error(404, 20404, f"The requested resource {call_sid} was not found")
            sid = new_sid("RE")
            with self._lock:
                self.recordings.add(sid)
            body = {
                "sid": sid,
                "account_sid": self.account_sid,
                "call_sid": call_sid,
                "conference_sid": None,
                "api_version": "2010-04-01",
                "date_created": _now_rfc2822(),
                "date_updated": _now_rfc2822(),
                "start_time": _now_rfc2822(),
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
            return JSONResponse(body, status_code=201)

        @app.delete(API_PREFIX + "/Recordings/{recording_sid}.json", response_model=None)
        async def delete_recording(account_sid: str, recording_sid: str, request: Request) -> Response:
            _, refusal = await self._admit(request, account_sid)
            if refusal is not None:
                return refusal
            with self._lock:
                if recording_sid not in self.recordings:
                    return _error(404, 20404, f"The requested resource {recording_sid} was not found")
                self.recordings.discard(recording_sid)
            return Response(status_code=204)

        @app.post(API_PREFIX + "/Conferences/{conference}/Participants.json")
        async def add_participant(account_sid: str, conference: str, request: Request) -> JSONResponse:
            form, refusal = await self._admit(request, account_sid)
            if refusal is not None:
                return refusal
            call = SimulatedCall(
                sid=new_sid("CA"),
                status="queued",
                to=form.get("To", ""),
                from_=form.get("From", ""),
                direction="outbound-api",
            )
            with self._lock:
                self._calls[call.sid] = call
                conference_sid = self._conference_sids.setdefault(
                    conference, conference if conference.startswith("CF") else new_sid("CF")
                )
            body = {
                "account_sid": self.account_sid,
                "call_sid": call.sid,
                "conference_sid": conference_sid,
                "label": form.get("Label"),
                "call_sid_to_coach": form.get("CallSidToCoach"),
                "coaching": form.get("Coaching") == "true",
                "date_created": _now_rfc2822(),
                "date_updated": _now_rfc2822(),
                "end_conference_on_exit": form.get("EndConferenceOnExit") == "true",
                "start_conference_on_enter": form.get("StartConferenceOnEnter", "true") == "true",
                "muted": form.get("Muted") == "true",
                "hold": False,
                "status": "queued",
                "queue_time": "0",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Conferences/{conference_sid}"
                f"/Participants/{call.sid}.json",
            }
            return JSONResponse(body, status_code=201)

        return app


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable
