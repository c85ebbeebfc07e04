"""A small Twilio REST client for call control, in a sync flavour (workers) and an async one (the relay).

Both flavours share `TwilioRequests`, which builds every request (URL under `TWILIO_API_BASE_URL`, basic auth
with the account sid and auth token, form body) and interprets every answer; the classes around it only
send. Adding an operation means one builder method plus one thin method per flavour.

Errors: a call Twilio no longer knows (HTTP 404 / code 20404) or no longer has up (code 21220) is an ended
call, not an error. Anything else raises `TwilioRestError`, whose `retryable` says whether trying again can
help (network trouble, 429, 5xx). Every request has a timeout, so a slow Twilio never hangs a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn, Self

import httpx

from app.settings import MissingSettingError, Settings

API_VERSION = "2010-04-01"
NOT_FOUND_CODE = 20404
NOT_IN_PROGRESS_CODE = 21220
LIVE_STATUSES = frozenset({"queued", "ringing", "in-progress"})
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class TwilioRestError(RuntimeError):
    """Twilio refused or could not be reached; `retryable` says whether a retry may succeed."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        """Network trouble, rate limiting and server errors may pass; refusals will not."""
        return self.status is None or self.status == 429 or self.status >= 500

    def __repr__(self) -> str:
        return f"TwilioRestError(status={self.status}, code={self.code})"


@dataclass(frozen=True, slots=True)
class TwilioRequest:
    """One request, ready for either flavour of httpx client."""

    method: str
    path: str
    data: dict[str, str] = field(default_factory=dict)


def _error_code(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return int(code) if isinstance(code, int | str) and str(code).isdigit() else None


def _is_gone(response: httpx.Response) -> bool:
    code = _error_code(response)
    return response.status_code == 404 or code in {NOT_FOUND_CODE, NOT_IN_PROGRESS_CODE}


def _raise_for(response: httpx.Response, what: str) -> NoReturn:
    code = _error_code(response)
    raise TwilioRestError(
        f"Twilio {what} failed: HTTP {response.status_code}", status=response.status_code, code=code
    )


class TwilioRequests:
    """Builds requests and reads answers; shared by `TwilioRest` and `AsyncTwilioRest`."""

    def __init__(self, account_sid: str, auth_token: str, base_url: str) -> None:
        self.account_sid = account_sid
        self.auth = httpx.BasicAuth(account_sid, auth_token)
        self.base_url = base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioRequests:
        """Credentials and base URL from settings; raises `MissingSettingError` when unset."""
        if not settings.twilio_account_sid:
            raise MissingSettingError("TWILIO_ACCOUNT_SID", "needed to control calls over Twilio's REST API")
        return cls(settings.twilio_account_sid, settings.auth_token(), settings.twilio_api_base_url)

    def _call_path(self, call_sid: str) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call_sid}.json"

    def complete_call(self, call_sid: str) -> TwilioRequest:
        """Hang the call up (Status=completed)."""
        return TwilioRequest("POST", self._call_path(call_sid), {"Status": "completed"})

    def fetch_call(self, call_sid: str) -> TwilioRequest:
        """Read the call's record (its status)."""
        return TwilioRequest("GET", self._call_path(call_sid))

    def redirect_call(self, call_sid: str, twiml: str, status_callback: str | None = None) -> TwilioRequest:
        """Replace the live call's TwiML (a transfer, or the way back to the agent); with `status_callback`,
        Twilio also reports the call's final status there (the phone call is over)."""
        data = {"Twiml": twiml}
        if status_callback:
            data["StatusCallback"] = status_callback
            data["StatusCallbackMethod"] = "POST"
        return TwilioRequest("POST", self._call_path(call_sid), data)

    def start_recording(self, call_sid: str, status_callback: str | None = None) -> TwilioRequest:
        data = {"RecordingChannels": "dual", "RecordingTrack": "both"}
        if status_callback:
            data["RecordingStatusCallback"] = status_callback
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call_sid}/Recordings.json"
        return TwilioRequest("POST", path, data)

    def delete_recording(self, recording_sid: str) -> TwilioRequest:
        """Delete a stored recording (its audio and metadata) from the account."""
        return TwilioRequest(
            "DELETE", f"/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{recording_sid}.json"
        )

    @staticmethod
    def deleted(response: httpx.Response) -> bool:
        """True if this request deleted the recording, False if Twilio no longer had it."""
        if response.is_success:
            return True
        if _is_gone(response):
            return False
        _raise_for(response, "recording deletion")

    @staticmethod
    def recording_sid(response: httpx.Response) -> str | None:
        """The new recording's sid, or None if the call had already ended."""
        if response.is_success:
            body: Any = response.json()
            return str(body.get("sid")) if isinstance(body, dict) and body.get("sid") else None
        if _is_gone(response):
            return None
        _raise_for(response, "recording start")

    @staticmethod
    def completed(response: httpx.Response) -> bool:
        """True if this request ended the call, False if it had already ended."""
        if response.is_success:
            return True
        if _is_gone(response):
            return False
        _raise_for(response, "call completion")

    @staticmethod
    def status(response: httpx.Response) -> str | None:
        """The call's status ("in-progress", "completed", ...), or None if Twilio does not know it."""
        if response.is_success:
            body: Any = response.json()
            return str(body.get("status")) if isinstance(body, dict) and body.get("status") else None
        if _is_gone(response):
            return None
        _raise_for(response, "call fetch")


class TwilioRest:
    """Blocking client (Celery workers, CLI). Use as a context manager or call `close()`."""

    def __init__(self, requests: TwilioRequests, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.requests = requests
        self._client = httpx.Client(base_url=requests.base_url, auth=requests.auth, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioRest:
        """A client for the account in settings."""
        return cls(TwilioRequests.from_settings(settings))

    def _send(self, request: TwilioRequest) -> httpx.Response:
        try:
            return self._client.request(request.method, request.path, data=request.data or None)
        except httpx.HTTPError as exc:
            raise TwilioRestError(f"Twilio unreachable: {type(exc).__name__}") from None

    def complete_call(self, call_sid: str) -> bool:
        """Hang up the call; True if it was up and is now completed, False if it had already ended."""
        return self.requests.completed(self._send(self.requests.complete_call(call_sid)))

    def call_status(self, call_sid: str) -> str | None:
        """The call's Twilio status, or None if Twilio does not know the call."""
        return self.requests.status(self._send(self.requests.fetch_call(call_sid)))

    def delete_recording(self, recording_sid: str) -> bool:
        """Delete a recording; True if deleted now, False if Twilio no longer had it."""
        return self.requests.deleted(self._send(self.requests.delete_recording(recording_sid)))

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class AsyncTwilioRest:
    """Non-blocking client for the relay's event loop. Use as an async context manager or `aclose()`."""

    def __init__(self, requests: TwilioRequests, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.requests = requests
        self._client = httpx.AsyncClient(base_url=requests.base_url, auth=requests.auth, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncTwilioRest:
        """A client for the account in settings."""
        return cls(TwilioRequests.from_settings(settings))

    async def _send(self, request: TwilioRequest) -> httpx.Response:
        try:
            return await self._client.request(request.method, request.path, data=request.data or None)
        except httpx.HTTPError as exc:
            raise TwilioRestError(f"Twilio unreachable: {type(exc).__name__}") from None

    async def complete_call(self, call_sid: str) -> bool:
        """Hang up the call; True if it was up and is now completed, False if it had already ended."""
        return self.requests.completed(await self._send(self.requests.complete_call(call_sid)))

    async def call_status(self, call_sid: str) -> str | None:
        """The call's Twilio status, or None if Twilio does not know the call."""
        return self.requests.status(await self._send(self.requests.fetch_call(call_sid)))

    async def redirect_call(self, call_sid: str, twiml: str, *, status_callback: str | None = None) -> bool:
        """Run new TwiML on the live call; False if the call had already ended."""
        request = self.requests.redirect_call(call_sid, twiml, status_callback)
        return self.requests.completed(await self._send(request))

    async def start_recording(self, call_sid: str, status_callback: str | None = None) -> str | None:
        """Start a dual-channel recording; returns its sid, or None if the call had ended."""
        request = self.requests.start_recording(call_sid, status_callback)
        return self.requests.recording_sid(await self._send(request))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()
