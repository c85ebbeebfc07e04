"""Per-process resources the tasks share: database sessions, an HTTP client, a Twilio client.

Celery's prefork pool forks children from the main worker process; a database connection or HTTP
connection pool must never cross a fork, so each resource is built lazily in the process that uses it and
rebuilt if the process id changes (the inherited copy is dropped without closing the parent's sockets).
"""

from __future__ import annotations

import os

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import make_engine, make_session_factory
from app.settings import Settings
from app.twilio.rest import TwilioRest
from workers.effects.delivery import SmtpFactory, default_smtp
from workers.effects.summary import ClientFactory, default_client


class WorkerContext:
    """What a worker (or beat) process needs to run effects; one per Celery app."""

    def __init__(
        self,
        settings: Settings,
        *,
        openai_client_factory: ClientFactory = default_client,
        smtp_factory: SmtpFactory = default_smtp,
    ) -> None:
        self.settings = settings
        self.openai_client_factory = openai_client_factory
        self.smtp_factory = smtp_factory
        self._pid = -1
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._http: httpx.Client | None = None
        self._twilio: TwilioRest | None = None

    def _ensure_process(self) -> None:
        if self._pid == os.getpid():
            return
        if self._engine is not None:
            self._engine.dispose(close=False)  # inherited from the parent: forget, do not close its sockets
        self._engine = None
        self._sessions = None
        self._http = None
        self._twilio = None
        self._pid = os.getpid()

    def sessions(self) -> sessionmaker[Session]:
        """The session factory for this process."""
        self._ensure_process()
        if self._sessions is None:
            self._engine = make_engine(self.settings)
            self._sessions = make_session_factory(self._engine)
        return self._sessions

    def http(self) -> httpx.Client:
        """A pooled HTTP client for webhooks (timeouts are set per request)."""
        self._ensure_process()
        if self._http is None:
            self._http = httpx.Client(follow_redirects=False)
        return self._http

    def twilio(self) -> TwilioRest | None:
        """A Twilio REST client, or None when the account is not configured."""
        self._ensure_process()
        if self._twilio is None and self.settings.twilio_account_sid and self.settings.twilio_auth_token:
            self._twilio = TwilioRest.from_settings(self.settings)
        return self._twilio

    def close(self) -> None:
        """Release this process's connections."""
        if self._pid != os.getpid():
            return
        if self._http is not None:
            self._http.close()
        if self._twilio is not None:
            self._twilio.close()
        if self._engine is not None:
            self._engine.dispose()
        self._pid = -1
