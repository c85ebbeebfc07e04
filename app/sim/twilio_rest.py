"""A simulated Twilio REST API (the 2010-04-01 subset the product uses): calls, recordings, participants
(app/sim/twilio_rest_calls.py) and the account's phone numbers (app/sim/twilio_rest_numbers.py).

Recordings started here are kept in ``recordings`` until deleted (``DELETE .../Recordings/{sid}.json``, as
the retention sweep asks).

It records every request, answers with JSON shaped like Twilio's, checks HTTP basic auth (account sid +
auth token) and returns Twilio's error JSON (``{"code": 20404, ...}``) for unknown resources, so the real
``twilio`` SDK parses its answers and raises ``TwilioRestException`` exactly as against Twilio.

Pointing the ``twilio`` SDK at it (the relay's ``TWILIO_API_BASE_URL`` uses the same mechanism): every
``/2010-04-01`` resource hangs off the ``client.api`` domain, whose ``base_url`` attribute
(``"https://api.twilio.com"``) is read on each request, so after

    client = Client(account_sid, auth_token)            # or http_client=AsyncTwilioHttpClient()
    client.api.base_url = "http://127.0.0.1:PORT"        # any scheme://host[:port], no trailing path

``client.calls(sid).update(...)``, ``client.calls.create(...)``, ``client.calls(sid).recordings.create(...)``,
``client.conferences(name).participants.create(...)`` and ``client.incoming_phone_numbers...`` (sync and
``*_async``) all go to that origin. ``twilio_client_for`` below does exactly this. One caveat: the SDK
rewrites hostnames when an edge or region is configured (``TWILIO_EDGE``/``TWILIO_REGION`` in the
environment, or ``edge=``/``region=``), which would mangle a local address, so leave both unset when
overriding the base URL.

The server runs uvicorn on 127.0.0.1 (a free port) in a background thread, so blocking SDK calls from the
test's own thread or event loop work. ``link_caller`` makes a call update behave like Twilio's: new TwiML or
``Status=completed`` ends the caller's media stream (``stop`` frame, then close).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from twilio.rest import Client

from app.sim.twilio_rest_calls import CallsResource, SimulatedCall, StreamEnder
from app.sim.twilio_rest_common import RecordedRequest, twilio_error
from app.sim.twilio_rest_numbers import NumbersResource, SimulatedNumber
from app.sim.twilio_webhook import new_sid as new_sid

__all__ = [
    "RecordedRequest",
    "SimulatedCall",
    "SimulatedNumber",
    "SimulatedTwilioRest",
    "StreamEnder",
    "new_sid",
    "twilio_client_for",
]


def twilio_client_for(base_url: str, account_sid: str, auth_token: str, **kwargs: Any) -> Client:
    """A real ``twilio.rest.Client`` whose 2010-04-01 API requests go to ``base_url``."""
    client = Client(account_sid, auth_token, **kwargs)
    client.api.base_url = base_url.rstrip("/")
    return client


class SimulatedTwilioRest:
    """Serve the simulated API in a background thread; use as a (sync or async) context manager."""

    def __init__(self, account_sid: str, auth_token: str, *, port: int = 0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self.calls = CallsResource(account_sid, self._lock)
        self.numbers = NumbersResource(account_sid, self._lock)
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
        self.calls.cancel_pending()
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
        return self.calls.add(call_sid, status=status, **details)

    @property
    def recordings(self) -> set[str]:
        """Recording sids this account still stores (started and not deleted)."""
        return self.calls.recordings

    def call(self, call_sid: str) -> SimulatedCall | None:
        """The call's current record, or None if unknown."""
        return self.calls.get(call_sid)

    def set_status(self, call_sid: str, status: str) -> None:
        """Change a known call's status (``completed``, ``in-progress``, ...)."""
        self.calls.set_status(call_sid, status)

    def add_number(self, phone_number: str, **config: Any) -> SimulatedNumber:
        """Give the account a phone number, optionally configured (``voice_url=...``, ``trunk_sid=...``)."""
        return self.numbers.add(phone_number, **config)

    def number(self, phone_number: str) -> SimulatedNumber | None:
        """The account's record of ``phone_number``, or None."""
        return self.numbers.find(phone_number)

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
        self.calls.link(caller, asyncio.get_running_loop())

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

    async def _admit(self, request: Request, account_sid: str) -> tuple[dict[str, str], JSONResponse | None]:
        """Record the request, then apply the delay, auth and failure knobs; returns (form, refusal)."""
        form_data = await request.form()
        multi: dict[str, list[str]] = {}
        for key, value in form_data.multi_items():
            multi.setdefault(key, []).append(str(value))
        form = {key: values[-1] for key, values in multi.items()}
        query = dict(request.query_params)
        with self._lock:
            self._requests.append(RecordedRequest(request.method, request.url.path, form, multi, query))
        if self._delay_seconds:
            await asyncio.sleep(self._delay_seconds)
        if not self._authorised(request, account_sid):
            return form, twilio_error(401, 20003, "Authenticate")
        failure = self._take_failure()
        if failure is not None:
            return form, twilio_error(failure, 20500, "Internal Server Error (simulated)")
        return form, None

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        self.calls.register(app, self._admit)
        self.numbers.register(app, self._admit)
        return app
