"""The staff pages under /backoffice: sign in, the calls list, a call, marking a call followed up.

Every page but the sign-in form needs the signed session cookie (otherwise: a redirect to sign in); every
POST needs the form's CSRF token. Pages are plain HTML with inline CSS and no script.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader

from app.backoffice import present
from app.backoffice.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    SIGN_IN_COOKIE,
    SIGN_IN_FORM_SECONDS,
    SignedValue,
    tokens_match,
)
from app.backoffice.call_detail import load_call
from app.backoffice.office import BackOffice, live_call_sids, office_of
from app.backoffice.queries import CallFilters, add_follow_up, list_calls
from app.logs import get_logger

log = get_logger(__name__)
PREFIX = "/backoffice"
MAX_FORM_BYTES = 16 * 1024
router = APIRouter(prefix=PREFIX, include_in_schema=False)
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
templates.filters["duration"] = present.duration_text
templates.filters["recording_status"] = present.recording_status_text


class SignInRequired(Exception):
    """The page needs a signed-in member of staff; answered with a redirect to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def install_sign_in_redirect(app: FastAPI) -> None:
    """Answer `SignInRequired` with a redirect to the sign-in form that comes back afterwards."""

    async def redirect(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        target = f"{PREFIX}/sign-in?{urlencode({'next': exc.next_path})}"
        return _secured(RedirectResponse(target, status_code=303))

    app.add_exception_handler(SignInRequired, redirect)


@dataclass(frozen=True, slots=True)
class Staff:
    """A signed-in request: the back office and the session it proved."""

    office: BackOffice
    session: SignedValue

    @property
    def csrf(self) -> str:
        return self.office.signer.csrf_token(self.session)


async def signed_in(request: Request) -> Staff:
    """The request's staff session, or a redirect to sign in."""
    office = office_of(request)
    session = office.signer.verify(request.cookies.get(SESSION_COOKIE), "session")
    if session is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    return Staff(office, session)


StaffDep = Annotated[Staff, Depends(signed_in)]


def _secured(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; media-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


async def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """Render a page in the back office's threads (a long transcript is milliseconds of CPU off the loop)."""
    office = office_of(request)
    base = {"business_name": office.settings.business_name, "zone": office.settings.business_timezone}
    html = await office.store.run(templates.get_template(name).render, base | context)
    return _secured(HTMLResponse(html, status_code=status_code))


def _safe_next(value: object) -> str:
    """Only back office paths: a sign-in link must not send staff to another site."""
    text = str(value or "")
    if text.startswith(PREFIX + "/") and not text.startswith("//") and "\\" not in text:
        return text
    return f"{PREFIX}/calls"


async def _form(request: Request) -> dict[str, str]:
    """The posted form's fields (url-encoded, as every back office form is); empty if oversized."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=20)
    except ValueError:  # more fields than any form of ours has
        return {}
    return {key: values[0] for key, values in fields.items()}


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax")


async def message_page(request: Request, title: str, message: str, status_code: int) -> Response:
    """A plain page with a heading and one sentence (errors, waits)."""
    return await _page(request, "message.html", {"title": title, "message": message}, status_code)


async def unavailable_page(request: Request) -> Response:
    """The page shown when the call records cannot be read (the database is down or not migrated)."""
    message = "The call records cannot be reached right now. Please try again in a minute."
    response = await _page(
        request, "message.html", {"title": "Not available just now", "message": message}, 503
    )
    response.headers["Retry-After"] = "30"
    return response


async def _forbidden(request: Request) -> Response:
    message = (
        "This form has expired or did not come from the back office. Go back, reload the page and try again."
    )
    return await _page(request, "message.html", {"title": "Please try again", "message": message}, 403)


# --- sign in and out -----------------------------------------------------------------------------------
async def _sign_in_form(
    request: Request, next_path: str, error: str | None = None, status_code: int = 200
) -> Response:
    office = office_of(request)
    value = office.signer.issue("sign_in", SIGN_IN_FORM_SECONDS)
    signed = office.signer.verify(value, "sign_in")
    assert signed is not None
    context = {"next": next_path, "csrf": office.signer.csrf_token(signed), "error": error}
    response = await _page(request, "sign_in.html", context, status_code)
    _cookie(response, SIGN_IN_COOKIE, value, SIGN_IN_FORM_SECONDS)
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str = "") -> Response:
    office = office_of(request)
    if office.signer.verify(request.cookies.get(SESSION_COOKIE), "session") is not None:
        return _secured(RedirectResponse(_safe_next(next), status_code=303))
    return await _sign_in_form(request, _safe_next(next))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    office = office_of(request)
    address = office.client_address(request)
    wait = office.limiter.retry_after(address)
    if wait > 0:
        log.warning("backoffice_sign_in_limited", client=address, retry_after_s=round(wait))
        minutes = max(1, round(wait / 60))
        message = f"Too many wrong tries. Please wait about {minutes} minute{'s' if minutes > 1 else ''}."
        response = await _page(request, "message.html", {"title": "Please wait", "message": message}, 429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    form = await _form(request)
    pre_session = office.signer.verify(request.cookies.get(SIGN_IN_COOKIE), "sign_in")
    if not office.signer.csrf_ok(pre_session, form.get("csrf")):
        return await _forbidden(request)
    next_path = _safe_next(form.get("next"))
    if not tokens_match(form.get("token", ""), office.token):
        office.limiter.failed(address)
        log.warning("backoffice_sign_in_failed", client=address)
        return await _sign_in_form(request, next_path, "That access code is not right.", 401)
    office.limiter.succeeded(address)
    response = _secured(RedirectResponse(next_path, status_code=303))
    _cookie(response, SESSION_COOKIE, office.signer.issue("session", SESSION_SECONDS), SESSION_SECONDS)
    response.delete_cookie(SIGN_IN_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, staff: StaffDep) -> Response:
    form = await _form(request)
    if not staff.office.signer.csrf_ok(staff.session, form.get("csrf")):
        return await _forbidden(request)
    response = _secured(RedirectResponse(f"{PREFIX}/sign-in", status_code=303))
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


# --- calls -----------------------------------------------------------------------------------------------
@router.get("")
@router.get("/")
async def home(_staff: StaffDep) -> Response:
    return _secured(RedirectResponse(f"{PREFIX}/calls", status_code=303))


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/calls")
async def calls_page(request: Request, staff: StaffDep) -> Response:
    params = request.query_params
    page = params.get("page", "1")
    filters = CallFilters(
        date_from=_day(params.get("from")),
        date_to=_day(params.get("to")),
        outcome=(params.get("outcome") or "")[:32] or None,
        text=(params.get("q") or "")[:200] or None,
        page=min(int(page), 100_000) if page.isdigit() and int(page) > 0 else 1,
    )
    live = live_call_sids(request.app)
    listing = await staff.office.store.read(list_calls, filters, zone=staff.office.zone, live_sids=live)
    kept = {key: params[key] for key in ("from", "to", "outcome", "q") if params.get(key)}
    context = {
        "listing": listing,
        "filters": filters,
        "params": kept,
        "query_for_page": lambda number: urlencode(kept | {"page": number}),
        "outcomes": present.OUTCOME_LABELS,
        "staff_csrf": staff.csrf,
    }
    return await _page(request, "calls.html", context)


@router.get("/calls/{call_sid}")
async def call_page(request: Request, staff: StaffDep, call_sid: str) -> Response:
    office = staff.office
    live = call_sid in live_call_sids(request.app)
    detail = await office.store.read(
        load_call, call_sid, zone=office.zone, live=live, recording_url=office.recording_url
    )
    if detail is None:
        context = {"title": "Call not found", "message": "There is no call with that reference."}
        return await _page(request, "message.html", context, 404)
    return await _page(request, "call.html", {"call": detail, "csrf": staff.csrf, "staff_csrf": staff.csrf})


@router.post("/calls/{call_sid}/follow-up")
async def follow_up(request: Request, staff: StaffDep, call_sid: str) -> Response:
    form = await _form(request)
    if not staff.office.signer.csrf_ok(staff.session, form.get("csrf")):
        return await _forbidden(request)
    note = form.get("note", "")[:2000]
    saved = await staff.office.store.write(add_follow_up, call_sid, note, zone=staff.office.zone)
    if saved is None:
        context = {"title": "Call not found", "message": "There is no call with that reference."}
        return await _page(request, "message.html", context, 404)
    target = f"{PREFIX}/calls/{quote(call_sid, safe='')}#follow-ups"
    return _secured(RedirectResponse(target, status_code=303))
