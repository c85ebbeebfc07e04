"""A call's recording, played in the staff page: fetched from Twilio with the account's credentials.

Twilio can require HTTP authentication on recording media, and staff have no Twilio login, so the page's
player points here; the relay fetches the MP3 with the account sid and auth token and streams it through
(never buffering a whole recording, never on behalf of anyone without a staff session).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.backoffice.pages import PREFIX, StaffDep, message_page
from app.db.models import RecordingRow

router = APIRouter(prefix=PREFIX, include_in_schema=False)
FETCH_TIMEOUT_SECONDS = 10.0


def _recording_of_call(session: Session, call_sid: str, recording_sid: str) -> bool:
    found = session.scalar(
        select(RecordingRow.id).where(
            RecordingRow.call_sid == call_sid, RecordingRow.recording_sid == recording_sid
        )
    )
    return found is not None


@router.get("/calls/{call_sid}/recordings/{recording_sid}")
async def recording(request: Request, staff: StaffDep, call_sid: str, recording_sid: str) -> Response:
    office = staff.office
    url = office.recording_url(recording_sid)
    token = office.settings.twilio_auth_token
    known = await office.store.read(_recording_of_call, call_sid, recording_sid)
    if not known or url is None or token is None:
        return await message_page(
            request, "Recording not found", "There is no such recording of this call.", 404
        )
    account = office.settings.twilio_account_sid or ""
    client = httpx.AsyncClient(auth=(account, token.get_secret_value()), timeout=FETCH_TIMEOUT_SECONDS)
    try:
        upstream = await client.send(client.build_request("GET", url), stream=True)
    except httpx.HTTPError:
        await client.aclose()
        return await message_page(request, "Recording unavailable", "Twilio did not answer. Try again.", 502)
    if upstream.status_code != 200:
        await upstream.aclose()
        await client.aclose()
        return await message_page(
            request, "Recording unavailable", "Twilio would not send it. Try again.", 502
        )

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_bytes():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return StreamingResponse(body(), media_type="audio/mpeg", headers=headers)
