"""The business's services, as the booking tools offer them to the model.

Read from the backend's `GET /services` when the relay starts and refreshed every `SERVICES_REFRESH_SECONDS`
in a background task, so a business adds a service without a deploy. Calls never wait for it: a session
takes whatever list is current when it opens. A failed or empty refresh keeps the last good list and logs;
with no list at all (the backend was down at start-up) the `service` argument is a free string and the
backend's own `unknown_service` error, with its list, reaches the model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.functions.business import BusinessBackend
from app.functions.business_answers import Service
from app.functions.registry import ToolError
from app.logs import get_logger

log = get_logger(__name__)


class ServiceCatalog:
    """The last good list of services, and the loop that keeps it fresh."""

    def __init__(self, backend: BusinessBackend, *, refresh_seconds: float) -> None:
        self._backend = backend
        self._refresh_seconds = refresh_seconds
        self._services: tuple[Service, ...] = ()
        self.replaced = asyncio.Event()  # set whenever a refresh replaces the list; whoever waits clears it

    @property
    def services(self) -> tuple[Service, ...]:
        return self._services

    async def refresh(self) -> bool:
        """Read the list once; True if it replaced the current one."""
        try:
            services = await self._backend.services()
        except ToolError as exc:
            log.warning("services_refresh_failed", code=exc.code, kept=len(self._services))
            return False
        if not services:
            log.warning("services_refresh_empty", kept=len(self._services))
            return False
        self._services = tuple(services)
        self.replaced.set()
        log.info("services_loaded", count=len(services))
        return True

    async def keep_fresh(self) -> None:
        """Refresh every `refresh_seconds` until cancelled (the relay's lifespan owns this task)."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            await self.refresh()

    def service_schema(self) -> dict[str, Any]:
        """The JSON schema of a tool's `service` argument: an enum of the current ids when there are any."""
        if not self._services:
            return {
                "type": "string",
                "description": "The id of the service the caller wants (the booking system checks it).",
            }
        offered = "; ".join(f"{s.id} ({s.name}, {s.minutes} minutes)" for s in self._services)
        return {
            "type": "string",
            "enum": [service.id for service in self._services],
            "description": f"The service's id. Offered: {offered}.",
        }
