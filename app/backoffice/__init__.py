"""The back office: server-rendered pages for staff under /backoffice, a JSON API under /api.

Enabled only when BACKOFFICE_TOKEN is set; without it neither prefix exists (404). See `auth.py` for the
credentials, `store.py` for how reads stay off the relay's event loop.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.backoffice import api, pages, recordings
from app.backoffice.office import BackOffice
from app.backoffice.store import StoreUnavailableError
from app.settings import Settings


def mount_backoffice(app: FastAPI, settings: Settings) -> BackOffice | None:
    """Add the back office's routes to the relay app when it is enabled; returns it (to close at shutdown)."""
    if settings.backoffice_token is None:
        return None
    office = BackOffice(settings)
    app.state.backoffice = office
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(recordings.router)
    pages.install_sign_in_redirect(app)
    app.add_exception_handler(StoreUnavailableError, _unavailable)
    return office


async def _unavailable(request: Request, _exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {"detail": "the call records are unavailable, try again shortly"}, status_code=503
        )
    return await pages.unavailable_page(request)
