"""Retention and `db forget` on PostgreSQL: the cases of tests/retention_cases.py on the real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.sim.twilio_rest import SimulatedTwilioRest
from app.twilio.rest import TwilioRequests, TwilioRest
from tests import retention_cases as cases
from tests.integration.workers_harness import Database

pytestmark = pytest.mark.integration

ACCOUNT = "AC" + "1" * 32
TOKEN = "pg-test-token"


@pytest.fixture
def twilio() -> Iterator[tuple[SimulatedTwilioRest, TwilioRest]]:
    with (
        SimulatedTwilioRest(ACCOUNT, TOKEN) as sim,
        TwilioRest(TwilioRequests(ACCOUNT, TOKEN, sim.base_url)) as rest,
    ):
        yield sim, rest


def test_purge_removes_only_calls_past_retention(
    pg: Database, twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    cases.check_purge_removes_only_calls_past_retention(pg.sessions, *twilio)


def test_a_recording_twilio_cannot_delete_keeps_its_call_for_the_next_run(
    pg: Database, twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    cases.check_a_recording_twilio_cannot_delete_keeps_its_call_for_the_next_run(pg.sessions, *twilio)


def test_forget_removes_every_call_of_one_caller_and_nothing_else(
    pg: Database, twilio: tuple[SimulatedTwilioRest, TwilioRest]
) -> None:
    cases.check_forget_removes_every_call_of_one_caller_and_nothing_else(pg.sessions, *twilio)
