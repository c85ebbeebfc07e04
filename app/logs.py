"""Structured logging for every process: key=value (or JSON) lines that carry the call sid.

Callers' words and numbers never go into logs; `mask_number` keeps just enough to tell calls apart.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", *, json_lines: bool = False) -> None:
    """Route stdlib and structlog output to stderr in one format."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; bind `call_sid=` on it for per-call lines."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def mask_number(number: str | None) -> str:
    """A phone number reduced to its last two digits, for logs."""
    if not number:
        return "-"
    return "***" + number[-2:]
