"""The demo backend against docs/business-api.yaml, with schemathesis: every operation, valid and invalid
requests, every answer checked against the contract (status codes, content types, bodies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from app.sim.demo_business import create_demo_business_app
from app.sim.demo_profiles import SALON

SPEC = Path(__file__).resolve().parents[2] / "docs" / "business-api.yaml"

schema = schemathesis.openapi.from_path(SPEC)
schema.app = create_demo_business_app()
salon_schema = schemathesis.openapi.from_path(SPEC)
salon_schema.app = create_demo_business_app(profile=SALON)

# Bounded and deterministic: the same examples on every run, quick enough for every test run.
bounded = settings(
    max_examples=40,
    derandomize=True,
    database=None,  # nothing written under .hypothesis/
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@bounded
def test_the_dental_demo_backend_keeps_the_contract(case: Any) -> None:
    case.call_and_validate()


@salon_schema.parametrize()
@bounded
def test_the_salon_demo_backend_keeps_the_contract(case: Any) -> None:
    case.call_and_validate()
