"""The relay's business client against backends that break the contract: every answer outside it becomes
a structured tool error, never nonsense for the model or a crash. And the services catalogue it feeds."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.functions.booking import booking_tools
from app.functions.business import BusinessBackend
from app.functions.registry import ToolContext, ToolError, ToolRegistry
from app.functions.services import ServiceCatalog
from app.sim.demo_business import create_demo_business_app
from app.sim.demo_profiles import SALON

Answer = Callable[[httpx.Request], httpx.Response]


def _backend(answer: Answer) -> BusinessBackend:
    return BusinessBackend(
        httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://backend")
    )


def _json(body: Any, status: int = 200) -> Answer:
    return lambda request: httpx.Response(status, json=body)


def _text(body: str, status: int = 200, content_type: str = "text/html") -> Answer:
    return lambda request: httpx.Response(status, text=body, headers={"content-type": content_type})


GOOD_HOURS = {"date": "2026-12-02", "closed": False, "open": "09:00", "close": "17:00", "holiday": "no"}


async def test_an_answer_in_the_contract_passes_through_with_its_extra_fields() -> None:
    backend = _backend(_json(GOOD_HOURS))
    assert await backend.hours("2026-12-02") == GOOD_HOURS
    await backend.aclose()


@pytest.mark.parametrize(
    ("answer", "bad_field"),
    [
        (_json({"date": "2026-12-02", "closed": "no"}), "closed"),  # a string where a boolean belongs
        (_json({"date": "2026-12-02"}), "closed"),  # a required field missing
        (_json({"date": 20261202, "closed": False}), "date"),  # a number where a string belongs
        (_text("<html><body>It works!</body></html>"), "date"),  # an HTML page behind a 200
        (_text("ok", content_type="text/plain"), "date"),  # not JSON at all
    ],
)
async def test_hours_outside_the_contract_are_a_structured_error(answer: Answer, bad_field: str) -> None:
    backend = _backend(answer)
    with pytest.raises(ToolError) as raised:
        await backend.hours("2026-12-02")
    await backend.aclose()
    assert raised.value.code == "backend_bad_answer"
    assert bad_field in raised.value.detail["fields"]
    assert raised.value.as_output()["error"]["message"] == "The booking system answered something unexpected."


async def test_a_json_list_instead_of_an_object_is_a_structured_error() -> None:
    backend = _backend(_json([GOOD_HOURS]))
    with pytest.raises(ToolError) as raised:
        await backend.hours("2026-12-02")
    await backend.aclose()
    assert raised.value.code == "backend_unavailable"


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (_text("<html><h1>502 Bad Gateway</h1></html>", status=502), "backend_unavailable"),
        (_text("<html><h1>404 Not Found</h1></html>", status=404), "rejected"),
        (_json({"detail": "Not authenticated"}, status=401), "rejected"),
        (
            _json({"error": {"code": "slot_taken", "message": "Taken.", "alternatives": []}}, 409),
            "slot_taken",
        ),
    ],
)
async def test_error_pages_and_errors_become_tool_errors(answer: Answer, code: str) -> None:
    backend = _backend(answer)
    with pytest.raises(ToolError) as raised:
        await backend.book(
            name="Alex", phone="+14155550100", service="cut", start="2026-12-03T10:00:00-05:00"
        )
    await backend.aclose()
    assert raised.value.code == code


@pytest.mark.parametrize(
    "body",
    [
        {"date": "2026-12-02", "service": "cleaning", "slots": "10:00"},  # slots not a list
        {"date": "2026-12-02", "service": "cleaning", "slots": [1000]},  # items not strings
        {"date": "2026-12-02", "slots": []},  # service missing
    ],
)
async def test_availability_outside_the_contract_is_a_structured_error(body: dict[str, Any]) -> None:
    backend = _backend(_json(body))
    with pytest.raises(ToolError) as raised:
        await backend.availability("2026-12-02", "cleaning")
    await backend.aclose()
    assert raised.value.code == "backend_bad_answer"


async def test_a_booking_without_a_confirmation_is_a_structured_error() -> None:
    backend = _backend(
        _json({"confirmation": "", "service": "cut", "start": "2026-12-03T10:00:00-05:00"}, 201)
    )
    with pytest.raises(ToolError) as raised:
        await backend.book(
            name="Alex", phone="+14155550100", service="cut", start="2026-12-03T10:00:00-05:00"
        )
    await backend.aclose()
    assert raised.value.code == "backend_bad_answer" and raised.value.detail["fields"] == ["confirmation"]


@pytest.mark.parametrize(
    "body",
    [
        {"services": [{"id": "cut", "name": "Cut", "minutes": "45"}]},  # minutes as a string
        {"services": [{"id": "cut", "name": "Cut"}]},  # minutes missing
        {"services": [{"id": "", "name": "Cut", "minutes": 45}]},  # an empty id
        {"services": {"cut": 45}},  # not a list
        {"items": []},  # the wrong key
    ],
)
async def test_services_outside_the_contract_are_a_structured_error(body: dict[str, Any]) -> None:
    backend = _backend(_json(body))
    with pytest.raises(ToolError) as raised:
        await backend.services()
    await backend.aclose()
    assert raised.value.code == "backend_bad_answer"


# --- the catalogue -------------------------------------------------------------------------------------


class SwitchableBackend:
    """A backend whose answer to GET /services the test changes between refreshes."""

    def __init__(self) -> None:
        self.answer: Answer = _json({"services": [{"id": "haircut", "name": "Haircut", "minutes": 45}]})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return self.answer(request)


def _service_enum(registry: ToolRegistry, tool: str) -> list[str] | None:
    schema = next(s for s in registry.schemas() if s["name"] == tool)
    enum: list[str] | None = schema["parameters"]["properties"]["service"].get("enum")
    return enum


async def test_the_booking_tools_offer_the_services_the_backend_lists() -> None:
    app = create_demo_business_app(profile=SALON)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://salon")
    backend = BusinessBackend(client)
    catalog = ServiceCatalog(backend, refresh_seconds=60)
    registry = ToolRegistry(booking_tools(backend, catalog, timezone=SALON.timezone))
    assert _service_enum(registry, "book_appointment") is None  # nothing loaded yet: a free string

    assert await catalog.refresh() is True

    ids = [service.id for service in SALON.services]
    assert _service_enum(registry, "book_appointment") == ids
    assert _service_enum(registry, "check_availability") == ids
    schema = next(s for s in registry.schemas() if s["name"] == "book_appointment")
    assert "Haircut, 45 minutes" in schema["parameters"]["properties"]["service"]["description"]
    outcome = await registry.invoke(
        "check_availability", json.dumps({"service": "colour", "date": "2030-01-07"}), ToolContext("CA1")
    )
    assert outcome.ok and outcome.output["service"] == "colour"
    await backend.aclose()


@pytest.mark.parametrize(
    "failure",
    [
        _text("<html>Service Unavailable</html>", status=503),
        _json({"services": [{"id": "haircut"}]}),
        _json({"services": []}),
    ],
)
async def test_a_failed_refresh_keeps_the_last_good_list(failure: Answer) -> None:
    switchable = SwitchableBackend()
    backend = _backend(switchable)
    catalog = ServiceCatalog(backend, refresh_seconds=60)
    assert await catalog.refresh() is True

    switchable.answer = failure
    assert await catalog.refresh() is False

    assert [service.id for service in catalog.services] == ["haircut"]
    switchable.answer = _json({"services": [{"id": "colour", "name": "Colour", "minutes": 120}]})
    assert await catalog.refresh() is True
    assert catalog.service_schema()["enum"] == ["colour"]
    await backend.aclose()


async def test_the_refresh_loop_picks_up_a_new_list_while_calls_go_on() -> None:
    switchable = SwitchableBackend()
    backend = _backend(switchable)
    catalog = ServiceCatalog(backend, refresh_seconds=0.05)
    assert await catalog.refresh() is True
    catalog.replaced.clear()
    switchable.answer = _json({"services": [{"id": "colour", "name": "Colour", "minutes": 120}]})

    refresher = asyncio.create_task(catalog.keep_fresh())
    try:
        await asyncio.wait_for(catalog.replaced.wait(), 5)
        assert [service.id for service in catalog.services] == ["colour"]
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await backend.aclose()
