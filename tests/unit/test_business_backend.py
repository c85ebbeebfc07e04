"""The business backend client: its credential on every request, and no silent demo office."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.functions.business import make_business_backend
from app.functions.registry import ToolError
from app.settings import MissingSettingError, load_settings
from app.sim.demo_business import demo_backend
from app.sim.harness import bound_port, serve_in_background, stop_server


async def test_every_request_carries_the_bearer_token() -> None:
    seen: list[str | None] = []
    backend_app = FastAPI()

    @backend_app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything(request: Request) -> JSONResponse:
        seen.append(request.headers.get("authorization"))
        return JSONResponse({"ok": True})

    server = await serve_in_background(backend_app)
    try:
        settings = load_settings(
            _env_file=None,
            business_api_base=f"http://127.0.0.1:{bound_port(server)}",
            business_api_token="tok-123",
        )
        backend = make_business_backend(settings)
        try:
            # The stand-in's answers are off-contract (the client refuses them); only the headers matter here.
            with contextlib.suppress(ToolError):
                await backend.hours("2030-01-07")
            with contextlib.suppress(ToolError):
                await backend.availability("2030-01-07", "cleaning")
            with contextlib.suppress(ToolError):
                await backend.book(
                    name="Ann", phone="+15550001111", service="cleaning", start="2030-01-07T09:00"
                )
        finally:
            await backend.aclose()
    finally:
        await stop_server(server)
    assert seen == ["Bearer tok-123"] * 3


@pytest.mark.parametrize("base", [None, "demo"])
def test_the_relay_backend_never_falls_back_to_the_demo_office(base: str | None) -> None:
    settings = load_settings(_env_file=None, business_api_base=base)
    with pytest.raises(MissingSettingError) as refused:
        make_business_backend(settings)
    assert refused.value.name == "BUSINESS_API_BASE"


async def test_the_demo_office_is_wired_in_on_purpose_and_ignores_the_token() -> None:
    backend = demo_backend(load_settings(_env_file=None, business_api_token="tok-123"))
    try:
        assert "open" in await backend.hours("2030-01-07")
    finally:
        await backend.aclose()


def test_the_production_client_does_not_load_the_simulators() -> None:
    probe = (
        "import sys, app.functions.business, app.functions.booking\n"
        "print(sorted(m for m in sys.modules if m.startswith('app.sim')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_contract_declares_the_bearer_token_for_every_operation() -> None:
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no types; only this test reads YAML

    contract = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "docs" / "business-api.yaml").read_text()
    )
    schemes = contract["components"]["securitySchemes"]
    assert [name for name, scheme in schemes.items() if scheme == schemes[name] | {"scheme": "bearer"}]
    # Required of a backend on the internet, optional in the contract since the demo office ignores it.
    assert contract["security"] == [{name: []} for name in schemes] + [{}]
