"""Deliver each call's summary to back-office staff: a Slack-compatible webhook and/or email over SMTP.

Each channel is its own effect (`summary_webhook`, `summary_email`), so a broken mail server never holds
back the Slack message and neither is sent twice once recorded. The webhook body is Slack's incoming-webhook
JSON (`text` plus `blocks`), which Slack, Mattermost, Discord's /slack endpoint and most chat tools accept.
Emails carry a Message-ID derived from the call sid, so a rare duplicate (a worker dying between sending
and recording) threads onto the first one instead of looking like a new call.

The caller's number is in the message: staff need it to call back. It never goes into logs.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from app.db.ledger import DONE, SETTLED, SKIPPED, bump_attempts, effect_status, settle_effect
from app.settings import Settings
from workers.effects.call_view import CallView, cost_line, load_call_view
from workers.effects.errors import PermanentEffectError, TransientEffectError
from workers.effects.http_delivery import post_json
from workers.effects.outcome import OUTCOME_LABELS

WEBHOOK = "webhook"
EMAIL = "email"
CHANNELS = (WEBHOOK, EMAIL)
EFFECTS = {WEBHOOK: "summary_webhook", EMAIL: "summary_email"}
SMTP_TIMEOUT_SECONDS = 20.0

SmtpFactory = Callable[[Settings], smtplib.SMTP]


def configured_channels(settings: Settings) -> list[str]:
    """The delivery channels these settings enable."""
    channels = []
    if settings.summary_webhook_url:
        channels.append(WEBHOOK)
    if settings.smtp_host and settings.summary_email_to:
        channels.append(EMAIL)
    return channels


def _headline(view: CallView) -> str:
    outcome = OUTCOME_LABELS.get(view.outcome.outcome, view.outcome.outcome) if view.outcome else "call ended"
    caller = view.call.from_number or "unknown caller"
    return f"Call from {caller}: {outcome}"


def _facts(view: CallView) -> list[tuple[str, str]]:
    call = view.call
    duration = view.duration_seconds
    facts = [
        ("Caller", call.from_number or "unknown"),
        ("Outcome", OUTCOME_LABELS.get(view.outcome.outcome, "-") if view.outcome else "-"),
        ("Started", call.started_at.strftime("%Y-%m-%d %H:%M UTC") if call.started_at else "-"),
        ("Length", f"{round(duration)}s" if duration is not None else "-"),
        ("Ended", (call.end_reason or "-").replace("_", " ")),
        ("Cost", cost_line(view)),
        ("Call SID", call.call_sid),
    ]
    for attempt in view.transfers:
        facts.append((f"Transfer (segment {attempt.segment})", attempt.result or "no result"))
    for message in view.messages:
        facts.append(("Message", message.message))
        facts.append(("Message from", message.caller_name or "-"))
        facts.append(("Call back on", message.callback_number or call.from_number or "-"))
    return facts


def slack_message(view: CallView) -> dict[str, Any]:
    """The Slack incoming-webhook body for one call."""
    summary = view.summary.text if view.summary else "(no summary)"
    headline = _headline(view)
    return {
        "text": f"{headline}\n{summary}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": summary[:2900]}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in _facts(view)],
            },
        ],
    }


def summary_email(view: CallView, settings: Settings) -> EmailMessage:
    """The summary email for one call."""
    message = EmailMessage()
    message["Subject"] = _headline(view)
    message["From"] = settings.summary_email_from or f"voice-agent@{settings.smtp_host}"
    message["To"] = settings.summary_email_to or ""
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<summary.{view.call.call_sid}@voice-agent>"
    facts = "\n".join(f"{key}: {value}" for key, value in _facts(view))
    summary = view.summary.text if view.summary else "(no summary)"
    message.set_content(f"{summary}\n\n{facts}\n\nTranscript:\n{view.transcript_text() or '(none)'}\n")
    return message


def default_smtp(settings: Settings) -> smtplib.SMTP:
    """A connected (and, when configured, STARTTLS-secured and logged-in) SMTP client."""
    host = settings.smtp_host or "localhost"
    if settings.smtp_port == 465:
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
    else:
        client = smtplib.SMTP(host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
        if settings.smtp_starttls:
            client.starttls(context=ssl.create_default_context())
    if settings.smtp_username and settings.smtp_password:
        client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
    return client


def send_email(message: EmailMessage, settings: Settings, smtp_factory: SmtpFactory) -> None:
    try:
        client = smtp_factory(settings)
        try:
            client.send_message(message)
        finally:
            client.quit()
    except smtplib.SMTPResponseException as exc:
        text = f"SMTP answered {exc.smtp_code}"
        raise (
            TransientEffectError(text) if 400 <= exc.smtp_code < 500 else PermanentEffectError(text)
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientEffectError(f"SMTP unavailable: {type(exc).__name__}") from None


def deliver_summary(
    sessions: sessionmaker[Session],
    settings: Settings,
    call_sid: str,
    channel: str,
    *,
    http: httpx.Client,
    smtp_factory: SmtpFactory = default_smtp,
) -> str:
    """Send the call's summary on one channel once; returns the effect's status (done, skipped)."""
    effect = EFFECTS[channel]
    with sessions() as session:
        status = effect_status(session, call_sid, effect)
        if status in SETTLED:
            return str(status)
        view = load_call_view(session, call_sid)
    if view is None:
        raise PermanentEffectError("unknown call")
    if channel not in configured_channels(settings):
        with sessions.begin() as session:
            settle_effect(
                session, call_sid, effect, SKIPPED, {"reason": f"{channel} delivery not configured"}
            )
        return SKIPPED
    with sessions.begin() as session:
        bump_attempts(session, call_sid, effect)
    if channel == WEBHOOK:
        assert settings.summary_webhook_url is not None
        body = json.dumps(slack_message(view)).encode()
        headers = {"Idempotency-Key": f"{effect}:{call_sid}"}
        response = post_json(http, settings.summary_webhook_url, body, headers, what="summary webhook")
        detail: dict[str, Any] = {"http_status": response.status_code}
    else:
        send_email(summary_email(view, settings), settings, smtp_factory)
        detail = {"recipients": len([a for a in (settings.summary_email_to or "").split(",") if a.strip()])}
    with sessions.begin() as session:
        settle_effect(session, call_sid, effect, DONE, detail)
    return DONE
