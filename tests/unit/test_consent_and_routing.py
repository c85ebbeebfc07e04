"""Recording-consent decisions and model routing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.calls.consent import TWO_PARTY_STATES, decide_consent
from app.calls.routing import choose_model
from app.settings import load_settings


@pytest.mark.parametrize("state", sorted(TWO_PARTY_STATES))
def test_two_party_states_hear_the_notice(state: str) -> None:
    choice = decide_consent("auto", state.lower(), recording_enabled=True)
    assert choice.notice_required and choice.reason == f"two_party_state:{state}"


def test_unknown_state_hears_the_notice_and_one_party_states_do_not() -> None:
    assert decide_consent("auto", None, recording_enabled=True).reason == "state_unknown"
    assert decide_consent("auto", "", recording_enabled=False).notice_required
    assert not decide_consent("auto", "NY", recording_enabled=True).notice_required
    assert decide_consent("always", "NY", recording_enabled=False).notice_required


def test_never_is_refused_while_recording() -> None:
    with pytest.raises(ValidationError, match="RECORDING_CONSENT=never"):
        load_settings(_env_file=None, recording_enabled=True, recording_consent="never")
    load_settings(_env_file=None, recording_enabled=False, recording_consent="never")


def test_routing_sends_listed_callers_and_escalations_to_the_full_model() -> None:
    settings = load_settings(_env_file=None, hard_caller_numbers="+15550001, +15550002")
    assert choose_model(settings, "+15559999") == "gpt-realtime-mini"
    assert choose_model(settings, "+15550002") == "gpt-realtime"
    assert choose_model(settings, "+15559999", escalated=True) == "gpt-realtime"
    assert choose_model(settings, None) == "gpt-realtime-mini"
