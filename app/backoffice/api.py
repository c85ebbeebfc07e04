"""The back office's JSON API under /api, behind `Authorization: Bearer <BACKOFFICE_TOKEN>`.

Its OpenAPI description is served at /api/openapi.json to an authenticated request only (the app's public
/openapi.json is off).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from app.backoffice.auth import tokens_match
from app.backoffice.call_detail import load_call
from app.backoffice.office import BackOffice, live_call_sids, office_of
from app.backoffice.queries import CallFilters, add_follow_up, list_calls
from app.backoffice.schemas import CallDetail, CallPage, FollowUp, FollowUpRequest

_bearer = HTTPBearer(auto_error=False, description="BACKOFFICE_TOKEN")


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> BackOffice:
    """The back office, if the request carries its token; 401 otherwise (async: no thread hop)."""
    office = office_of(request)
    if credentials is None or not tokens_match(credentials.credentials, office.token):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
        )
    return office


Office = Annotated[BackOffice, Depends(require_token)]
router = APIRouter(prefix="/api", tags=["back office"], dependencies=[Depends(require_token)])


async def filters_query(
    date_from: Annotated[date | None, Query(description="First local day (YYYY-MM-DD), inclusive.")] = None,
    date_to: Annotated[date | None, Query(description="Last local day (YYYY-MM-DD), inclusive.")] = None,
    outcome: Annotated[str | None, Query(max_length=32, description="An outcome, or `live`.")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Words said in the call, or caller digits.")
    ] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
) -> CallFilters:
    """The calls list's filters and paging, shared by the API and the pages."""
    return CallFilters(
        date_from=date_from, date_to=date_to, outcome=outcome or None, text=q, page=page, per_page=per_page
    )


@router.get("/calls", response_model=CallPage, summary="List calls, newest first")
async def api_list_calls(
    request: Request, office: Office, filters: Annotated[CallFilters, Depends(filters_query)]
) -> Response:
    live = live_call_sids(request.app)
    return await _json(office, await office.store.read(list_calls, filters, zone=office.zone, live_sids=live))


@router.get(
    "/calls/{call_sid}",
    response_model=CallDetail,
    summary="Everything stored about one call",
    responses={404: {"description": "No such call"}},
)
async def api_call(request: Request, office: Office, call_sid: str) -> Response:
    live = call_sid in live_call_sids(request.app)
    detail = await office.store.read(
        load_call, call_sid, zone=office.zone, live=live, recording_url=office.recording_url
    )
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such call")
    return await _json(office, detail)


@router.post(
    "/calls/{call_sid}/follow-up",
    response_model=FollowUp,
    status_code=status.HTTP_201_CREATED,
    summary="Mark a call followed up, with a note",
    responses={404: {"description": "No such call"}},
)
async def api_follow_up(office: Office, call_sid: str, body: FollowUpRequest) -> Response:
    follow_up = await office.store.write(add_follow_up, call_sid, body.note, zone=office.zone)
    if follow_up is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such call")
    return await _json(office, follow_up, status.HTTP_201_CREATED)


async def _json(office: BackOffice, model: BaseModel, status_code: int = 200) -> Response:
    """The model as JSON, serialised in the back office's threads (the declared response_model still
    describes it in the schema)."""
    body = await office.store.run(model.model_dump_json)
    return Response(body, status_code=status_code, media_type="application/json")


@router.get("/openapi.json", include_in_schema=False)
async def api_openapi() -> dict[str, Any]:
    return get_openapi(
        title="voice-agent back office API",
        version="1",
        description="Calls the agent answered: list, detail, follow-ups. "
        "Send `Authorization: Bearer <BACKOFFICE_TOKEN>`.",
        routes=router.routes,
    )
