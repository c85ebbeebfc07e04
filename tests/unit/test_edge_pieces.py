"""The edge's pure pieces: sealed transfer links, stream token expiry, webhook form limits, log scrubbing,
and the permissions of the files that hold callers' data."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from app.calls.caller import CallerInfo
from app.logs import scrub_secrets
from app.outbox.journal import Journal, NewEntry
from app.settings import load_settings
from app.twilio import transfer_link
from app.twilio.signature import parse_webhook_form, stream_token_is_fresh
from app.twilio.transfer_link import TransferContext, TransferLinkError, seal, unseal
from app.twilio.twiml import transfer_twiml

TOKEN = "0123456789abcdef0123456789abcdef"
CONTEXT = TransferContext("+14155550100", "+14155550199", "CA", 2, "Call from 4 1 5 5 5 5 0 1 0 0.")


def test_a_sealed_transfer_context_is_opaque_and_comes_back_whole() -> None:
    sealed = seal(TOKEN, CONTEXT)
    assert "4155550100" not in sealed and "Call from" not in sealed
    assert unseal(TOKEN, sealed) == CONTEXT


@pytest.mark.parametrize(
    "token",
    [None, "", "garbage", "%ff", seal("another-auth-token-entirely", CONTEXT)],
)
def test_a_forged_or_malformed_transfer_context_is_refused(token: str | None) -> None:
    with pytest.raises(TransferLinkError):
        unseal(TOKEN, token)


def test_an_old_transfer_context_is_refused() -> None:
    fernet = transfer_link._fernet(TOKEN)
    old = fernet.encrypt_at_time(b'{"segment":2}', int(time.time()) - 3600).decode()
    with pytest.raises(TransferLinkError):
        unseal(TOKEN, old)


def test_a_sealed_context_with_a_bad_segment_is_refused() -> None:
    fernet = transfer_link._fernet(TOKEN)
    for payload in (
        b'{"segment":"abc"}',
        b'{"segment":true}',
        b'{"segment":1}',
        b"[1]",
        b'{"segment":2,"brief":7}',
    ):
        with pytest.raises(TransferLinkError):
            unseal(TOKEN, fernet.encrypt(payload).decode())


def test_transfer_twiml_urls_carry_nothing_readable() -> None:
    settings = load_settings(
        _env_file=None, twilio_auth_token=TOKEN, public_base_url="https://relay.example.test"
    )
    caller = CallerInfo("CA" + "1" * 32, "+14155550100", "+14155550199", "CA")
    twiml = transfer_twiml(settings, caller, "+15557654321", "Call from 4 1 5 5 5 5 0 1 0 0. Billing.")
    urls = [part.split('"')[0] for part in twiml.split('="https://')[1:]]
    assert len(urls) == 2
    for url in urls:
        assert "4155550" not in url and "Billing" not in url and "state" not in url and "from=" not in url
        assert url.split("?")[1].startswith("ctx=")


def test_stream_tokens_expire() -> None:
    now = 1_800_000_000.0
    assert stream_token_is_fresh(str(int(now) - 30), 60, now)
    assert not stream_token_is_fresh(str(int(now) - 61), 60, now)
    assert not stream_token_is_fresh(str(int(now) + 60), 60, now)  # from the future
    for bad in (None, "", "abc", "-5", "1" * 20):
        assert not stream_token_is_fresh(bad, 60, now)


def test_webhook_forms_are_parsed_with_tight_limits() -> None:
    assert parse_webhook_form(b"CallSid=CA1&From=%2B1415&Empty=") == {
        "CallSid": "CA1",
        "From": "+1415",
        "Empty": "",
    }
    for bad in (
        "&".join(f"f{i}=1" for i in range(101)).encode(),
        b"x" * 65 + b"=1",
        b"a=" + b"%41" * 2049,
        b"a=\xff\xfe",
    ):
        with pytest.raises(ValueError):
            parse_webhook_form(bad)


def test_log_lines_lose_credentials_keys_sids_and_numbers() -> None:
    call_sid = "CA" + "1234567890" * 3 + "ab"
    event: dict[str, object] = {
        "event": "> Authorization: Bearer sk-proj-abcdef123456",
        "url": "https://api.twilio.com/2010-04-01/Accounts/AC" + "a" * 32 + "/Calls.json",
        "detail": ["call from +14155550100", {"auth": "Basic QUM6dG9rZW4="}],
        "call_sid": call_sid,
    }
    scrubbed = str(scrub_secrets(None, "info", event))
    for leaked in ("sk-proj-abc", "a" * 32, "+14155550100", "QUM6dG9rZW4="):
        assert leaked not in scrubbed
    assert call_sid in scrubbed  # call sids are what tie lines together: kept


def test_the_outbox_journal_is_private_to_the_service(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    journal = Journal(folder / "outbox.sqlite3")
    journal.append([NewEntry("t1", "CA1", "call_started", {"from": "+14155550100"})])
    journal.close()
    assert stat.S_IMODE((folder / "outbox.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for sidecar in folder.glob("outbox.sqlite3-*"):
        assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0
