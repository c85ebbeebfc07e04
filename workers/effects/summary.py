"""The post-call summary staff read: a few sentences from a model, or an extractive one without a key.

With `OPENAI_API_KEY` set, the openai SDK's chat completions API writes it (endpoint from
`OPENAI_BASE_URL`, model `SUMMARY_MODEL`). The model sees the transcript and the tool results, never the
caller's phone number. A model that is down or rate-limited is retried by the task; on the last attempt,
or when the model refuses the request, the extractive summary is stored instead, because a plain summary
on time beats none. The model call runs outside any database transaction; the write is claimed, so a
duplicate delivery stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import openai
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.db.ledger import DONE, SETTLED, claim_effect, effect_status, settle_effect
from app.db.models import Call, CallSummary
from app.db.pricing import summary_cost_usd
from app.db.upsert import insert_for
from app.settings import Settings
from workers.effects.call_view import CallView, cost_parts, load_call_view
from workers.effects.errors import TransientEffectError
from workers.effects.outcome import BOOKING_TOOLS, OUTCOME_LABELS

EFFECT = "summary"
LLM_TIMEOUT_SECONDS = 30.0
MAX_TRANSCRIPT_CHARS = 24_000
SYSTEM_PROMPT = (
    "You summarise phone calls between a small business's AI receptionist and a caller, for the staff "
    "who follow up. In 2 to 5 plain sentences say who called (name if given), what they wanted, what was "
    "done or agreed (bookings with service, date and time), and any follow-up staff must do. Quote dates, "
    "times and names exactly as in the transcript. Do not invent details. No greeting, no bullet points."
)

ClientFactory = Callable[[Settings], openai.OpenAI]


def default_client(settings: Settings) -> openai.OpenAI:
    """An SDK client for the summary model; the SDK itself reads OPENAI_BASE_URL when unset here."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return openai.OpenAI(
        api_key=key, base_url=settings.openai_base_url, timeout=LLM_TIMEOUT_SECONDS, max_retries=1
    )


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def message_lines(view: CallView) -> list[str]:
    """Each message the agent took, word for word, with who left it and where to call back."""
    lines = []
    for message in view.messages:
        who = f" from {message.caller_name}" if message.caller_name else ""
        callback = message.callback_number or view.call.from_number
        back = f", call back on {callback}" if callback else ""
        lines.append(f'Message for staff{who}{back}: "{_clip(message.message, 600)}"')
    return lines


def extractive_summary(view: CallView) -> str:
    """A plain summary from the stored facts: outcome, first and last caller words, bookings, length."""
    parts: list[str] = []
    if view.outcome is not None:
        parts.append(f"Outcome: {OUTCOME_LABELS.get(view.outcome.outcome, view.outcome.outcome)}.")
    caller_lines = [turn.text for turn in view.turns if turn.speaker == "caller" and turn.text.strip()]
    if not view.turns:
        parts.append("Nothing was said on the call.")
    elif caller_lines:
        parts.append(f'The caller said: "{_clip(caller_lines[0], 200)}"')
        if len(caller_lines) > 1:
            parts.append(f'Last words from the caller: "{_clip(caller_lines[-1], 160)}"')
    else:
        parts.append("The caller did not speak.")
    for tool in view.tools:
        if tool.ok and tool.name in BOOKING_TOOLS:
            details = ", ".join(f"{key} {value}" for key, value in tool.arguments.items() if key != "phone")
            parts.append(f"Booked: {details}.")
    if "emergency" in view.tags:
        parts.append("The caller described an emergency.")
    for attempt in view.transfers:
        if attempt.result and attempt.result != "completed":
            parts.append(f"A transfer to staff did not connect ({attempt.result.replace('-', ' ')}).")
    length = _duration(view.duration_seconds)
    ending = view.call.end_reason.replace("_", " ") if view.call.end_reason else "unknown"
    parts.append(f"Call length {length}, ended: {ending}." if length else f"Ended: {ending}.")
    return " ".join(parts)


def _model_input(view: CallView) -> str:
    transcript = view.transcript_text()[-MAX_TRANSCRIPT_CHARS:]
    tools = "\n".join(
        f"- {tool.name}({tool.arguments}) -> {'ok' if tool.ok else 'error'}: {tool.result}"
        for tool in view.tools
    )
    outcome = view.outcome.outcome if view.outcome else "unknown"
    messages = "\n".join(message_lines(view))
    return (
        f"Outcome: {outcome}\nTools used:\n{tools or '- none'}\n"
        + (f"Messages taken:\n{messages}\n" if messages else "")
        + f"\nTranscript:\n{transcript}"
    )


def llm_summary(view: CallView, settings: Settings, client: openai.OpenAI) -> tuple[str, Decimal]:
    """Ask the summary model: its text ("" if it answered nothing) and what it cost. Raises the SDK's
    errors."""
    completion = client.chat.completions.create(
        model=settings.summary_model,
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": _model_input(view)},
        ],
        temperature=0.2,
        max_tokens=300,
    )
    text = (completion.choices[0].message.content or "").strip() if completion.choices else ""
    usage = completion.usage
    tokens = (usage.prompt_tokens, usage.completion_tokens) if usage is not None else (0, 0)
    return text, summary_cost_usd(settings.summary_model, *tokens)


def _write(
    view: CallView, settings: Settings, allow_fallback: bool, factory: ClientFactory
) -> tuple[str, str, Decimal]:
    if settings.openai_api_key is None or not view.turns:
        return extractive_summary(view), "extractive", Decimal(0)
    try:
        text, cost = llm_summary(view, settings, factory(settings))
        if text:
            return text, "llm", cost
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
        if not allow_fallback:
            raise TransientEffectError(f"summary model unavailable: {type(exc).__name__}") from None
    except openai.APIError:
        pass  # refused (auth, bad request): retrying will not help
    return extractive_summary(view), "extractive", Decimal(0)


def summarise(
    sessions: sessionmaker[Session],
    settings: Settings,
    call_sid: str,
    *,
    allow_fallback: bool = True,
    client_factory: ClientFactory = default_client,
) -> str | None:
    """Write and store the call's summary once; returns its text (None for an unknown call)."""
    with sessions() as session:
        if effect_status(session, call_sid, EFFECT) in SETTLED:
            existing = session.get(CallSummary, call_sid)
            return existing.text if existing else None
        view = load_call_view(session, call_sid)
    if view is None:
        return None
    text, method, summary_cost = _write(view, settings, allow_fallback, client_factory)
    parts = cost_parts(view) | {"summary": summary_cost}
    # Staff act on a message word for word: it follows the summary however the summary was written.
    text = "\n".join([text, *message_lines(view)])
    with sessions.begin() as session:
        if claim_effect(session, call_sid, EFFECT) is None:
            existing = session.get(CallSummary, call_sid)
            return existing.text if existing else None
        session.execute(
            update(Call)
            .where(Call.call_sid == call_sid)
            .values(
                cost_breakdown={part: str(value) for part, value in parts.items()},
                cost_usd=sum(parts.values(), Decimal(0)),
            )
        )
        table = CallSummary.__table__
        model = settings.summary_model if method == "llm" else None
        stmt = insert_for(session, CallSummary).values(
            call_sid=call_sid, text=text, method=method, model=model
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.call_sid],
            set_={"text": stmt.excluded.text, "method": stmt.excluded.method, "model": stmt.excluded.model},
        )
        session.execute(stmt)
        settle_effect(session, call_sid, EFFECT, DONE, {"method": method})
    return text
