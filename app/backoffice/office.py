"""The back office's state for one relay process: settings, credentials, sign-in limiter and store."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request

from app.backoffice.auth import SessionSigner, SignInLimiter
from app.backoffice.store import BackOfficeStore
from app.settings import Settings


class BackOffice:
    """Everything the pages and the API share; built once by `mount_backoffice`."""

    def __init__(
        self,
        settings: Settings,
        *,
        signer: SessionSigner | None = None,
        limiter: SignInLimiter | None = None,
    ) -> None:
        assert settings.backoffice_token is not None
        self.settings = settings
        self.token = settings.backoffice_token.get_secret_value()
        self.zone = ZoneInfo(settings.business_timezone)
        self.signer = signer or SessionSigner(self.token)
        self.limiter = limiter or SignInLimiter()
        self.store = BackOfficeStore(settings)

    def recording_url(self, recording_sid: str) -> str | None:
        """Twilio's media URL for a recording of this account (None without an account sid)."""
        account = self.settings.twilio_account_sid
        if not account:
            return None
        base = self.settings.twilio_api_base_url
        return f"{base}/2010-04-01/Accounts/{account}/Recordings/{recording_sid}.mp3"

    def client_address(self, request: Request) -> str:
        """Who is signing in, for the rate limit: Fly's proxy names the client; elsewhere the peer does."""
        if self.settings.fly_machine_id:
            forwarded = request.headers.get("fly-client-ip")
            if forwarded:
                return forwarded.strip()[:64]
        return request.client.host if request.client else "unknown"


def live_call_sids(app: FastAPI) -> frozenset[str]:
    """The calls this relay process is carrying now (read on the event loop, before any thread hop)."""
    relay = getattr(app.state, "relay", None)
    calls = getattr(relay, "calls", None) or {}
    return frozenset(sid for sid, call in calls.items() if getattr(call, "attached", False))


def office_of(request: Request) -> BackOffice:
    """The back office mounted on this request's app."""
    office: BackOffice = request.app.state.backoffice
    return office
