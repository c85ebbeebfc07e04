"""The back office: server-rendered pages for staff under /backoffice, a JSON API under /api.

Enabled only when BACKOFFICE_TOKEN is set; without it neither prefix exists (404). See `auth.py` for the
credentials, `store.py` for how reads stay off the relay's event loop.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.backoffice import api, pages
from app.backoffice.office import BackOffice
from app.settings import Settings


def mount_backoffice(app: FastAPI, settings: Settings) -> BackOffice | None:
    """Add the back office's routes to the relay app when it is enabled; returns it (to close at shutdown)."""
    if settings.backoffice_token is None:
        return None
    office = BackOffice(settings)
    app.state.backoffice = office
    app.include_router(api.router)
    app.include_router(pages.router)
    pages.install_sign_in_redirect(app)
    return office
