"""Structured logging for every process: key=value (or JSON) lines that carry the call sid.

One pipeline for everything: our structlog loggers and the standard-library loggers of uvicorn, Celery and
the libraries all go through the same processors and renderer to stderr, so with `LOG_JSON=true` every line
is one JSON object. Callers' words and numbers never go into logs (`mask_number` keeps just enough to tell
calls apart), and a last processor scrubs what must never print even if a library logs it: the configured
secrets, bearer/basic credentials, OpenAI keys, Twilio account SIDs and phone numbers. Library loggers are
held at WARNING whatever `LOG_LEVEL` says: at DEBUG the websockets library prints request headers (the
OpenAI key) and httpx prints URLs with the account SID.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from pydantic import SecretStr

if TYPE_CHECKING:
    from app.settings import Settings

# Library loggers that stay at WARNING (or above, with a stricter LOG_LEVEL).
LIBRARY_LOGGERS = (
    "websockets",
    "httpx",
    "httpcore",
    "openai",
    "twilio",
    "urllib3",
    "asyncio",
    "multipart",
    "python_multipart",
    "hpack",
    "kombu",
    "celery",
    "redis",
    "sqlalchemy",
    "uvicorn",
)
# Lines an operator needs ("Uvicorn running on", "celery@host ready.", "Task x[id] succeeded in 0.1s: None"
# - our tasks return nothing, so no caller data): INFO at most.
LIFECYCLE_LOGGERS = ("uvicorn.error", "celery.apps.worker", "celery.app.trace")

_PATTERNS = (
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 [redacted]"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{4,}"), "sk-[redacted]"),
    (re.compile(r"\bAC[0-9a-fA-F]{32}\b"), "AC[redacted]"),
    (re.compile(r"(?<![\w+])\+\d{7,15}\b"), "[number]"),
)
_secrets: tuple[str, ...] = ()


def _scrub_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(item) for item in value)
    return value


def scrub_secrets(_logger: Any, _method: str, event_dict: structlog.typing.EventDict) -> Any:
    """structlog processor: no secret, credential or phone number leaves in a log line."""
    return {key: _scrub(value) for key, value in event_dict.items()}


def configure_logging(
    level: str = "INFO", *, json_lines: bool = False, secrets: Iterable[str | None] = ()
) -> None:
    """Route structlog and stdlib output to stderr in one format; `secrets` are never printed."""
    global _secrets
    _secrets = tuple(sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True))
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, scrub_secrets, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, scrub_secrets],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric_level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))
    for name in LIFECYCLE_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.INFO))
    logging.captureWarnings(True)  # Python warnings become log lines too (JSON with LOG_JSON)
    logging.getLogger("uvicorn.access").disabled = True  # app.access_log writes a line without the query


def settings_secrets(settings: Settings) -> list[str | None]:
    """Every secret setting (each `SecretStr`), the account SID and URL passwords: never to be printed."""
    values: list[str | None] = [settings.twilio_account_sid]
    for _name, value in settings:
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif isinstance(value, str) and "://" in value:
            values.append(urlsplit(value).password)
    return values


def bind_call_sid(call_sid: str) -> None:
    """Tag every line logged from here on in this task (and the tasks it starts) with the call sid,
    library lines included."""
    structlog.contextvars.bind_contextvars(call_sid=call_sid)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; bind `call_sid=` on it for per-call lines."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def mask_number(number: str | None) -> str:
    """A phone number reduced to its last two digits, for logs."""
    if not number:
        return "-"
    return "***" + number[-2:]
