"""The checks `voice-agent doctor` runs: each takes the settings and a timeout and returns one verdict.

Each asks the real thing the cheapest question that proves it works for the relay: OpenAI lists the models
the key may use; Twilio finds the number and reads its webhooks; the business backend answers `GET /services`
and `GET /hours` in the contract's shapes; the database's Alembic revision is the code's head; Redis answers
PING (or the embedded queue's folder is writable). No detail carries a key, a token or a password.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import openai
import redis
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import SQLAlchemyError

from app.db.engine import make_engine, normalise_database_url
from app.db.migrate import head_revision
from app.doctor.result import CheckResult, fail, ok, skip
from app.functions.business import make_business_backend
from app.functions.registry import ToolError
from app.settings import Settings
from app.twilio.number_setup import (
    NumberSetupError,
    bound_elsewhere,
    describe_twilio_failure,
    find_number,
    twilio_client,
    wanted_webhooks,
)


def _host(url: str) -> str:
    """Scheme, host and port of a URL: enough to say where, never credentials or a path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def check_openai(settings: Settings, timeout: float) -> CheckResult:
    """The key lists the models, and the realtime models are among them."""
    name = "openai"
    if settings.openai_api_key is None:
        return fail(name, "OPENAI_API_KEY is not set (the relay refuses to start without it)")
    client = openai.OpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=timeout,
        max_retries=0,
    )
    where = _host(str(client.base_url))
    try:
        offered = {model.id for model in client.models.list().data}
    except openai.AuthenticationError:
        return fail(name, f"{where} refused the key (HTTP 401): check OPENAI_API_KEY")
    except openai.APIStatusError as exc:
        return fail(name, f"{where} answered HTTP {exc.status_code} to GET /models")
    except openai.APIError as exc:  # connection errors and timeouts
        return fail(name, f"{where} could not be reached ({type(exc).__name__})")
    finally:
        client.close()
    wanted = [settings.realtime_model, settings.realtime_model_hard]
    missing = [model for model in wanted if model not in offered]
    if missing:
        return fail(name, f"the key cannot use {', '.join(missing)} (REALTIME_MODEL / REALTIME_MODEL_HARD)")
    return ok(name, f"key accepted by {where}; {', '.join(wanted)} available")


def check_twilio_account(settings: Settings, timeout: float) -> CheckResult:
    """The account sid and auth token are accepted."""
    name = "twilio account"
    client = twilio_client(settings, timeout=timeout)
    try:
        client.incoming_phone_numbers.list(limit=1)
    except Exception as exc:  # the SDK's and requests' errors, described without credentials
        return fail(name, describe_twilio_failure(exc))
    return ok(name, f"credentials accepted by {_host(settings.twilio_api_base_url)}")


def check_twilio_number(settings: Settings, timeout: float) -> CheckResult:
    """`TWILIO_PHONE_NUMBER` belongs to the account and its voice webhooks point at this relay."""
    name = "twilio number"
    if not settings.twilio_phone_number:
        return fail(name, "TWILIO_PHONE_NUMBER is not set")
    wanted = wanted_webhooks(settings)
    try:
        record = find_number(twilio_client(settings, timeout=timeout), settings.twilio_phone_number)
    except NumberSetupError as exc:
        return fail(name, str(exc))
    why = bound_elsewhere(record)
    if why is not None:
        return fail(name, f"{record.phone_number} {why}")
    if record.voice_url != wanted["voice_url"] or (record.voice_method or "POST").upper() != "POST":
        current = f"{record.voice_method} {record.voice_url or '(empty)'}"
        return fail(
            name,
            f"voice webhook is {current}, not POST {wanted['voice_url']}: run `voice-agent twilio configure`",
        )
    if not record.voice_fallback_url:
        return fail(name, "no voice fallback URL: a full relay's callers would hear an application error")
    return ok(name, f"{record.phone_number} rings POST {wanted['voice_url']}")


def check_business(settings: Settings, timeout: float) -> CheckResult:
    """The backend answers `GET /services` and `GET /hours` in the contract's shapes."""
    name = "business api"
    if settings.business_api_base is None:
        return fail(
            name, "BUSINESS_API_BASE is not set: callers would reach the demo backend, not the business"
        )
    if settings.business_api_base == "demo":
        return skip(name, "BUSINESS_API_BASE=demo: the built-in demo backend answers (not for real callers)")
    today = dt.datetime.now(ZoneInfo(settings.business_timezone)).date().isoformat()

    async def probe() -> str:
        backend = make_business_backend(settings, timeout=timeout)
        try:
            step = "GET /services"
            services = await backend.services()
            step = "GET /hours"
            await backend.hours(today)
        except ToolError as exc:
            raise _ProbeFailed(f"{step} failed: {exc.code} ({exc.message})") from None
        finally:
            await backend.aclose()
        ids = ", ".join(service.id for service in services)
        return f"{len(services)} services ({ids}); hours answered for {today}"

    try:
        detail = asyncio.run(probe())
    except _ProbeFailed as exc:
        return fail(name, f"{_host(settings.business_api_base or '')}: {exc}")
    return ok(name, f"{_host(settings.business_api_base or '')}: {detail}")


class _ProbeFailed(Exception):
    pass


def check_database(settings: Settings, timeout: float) -> CheckResult:
    """The database answers and its Alembic revision is the one the code ships."""
    name = "database"
    url = normalise_database_url(settings.database_url)
    where = url.render_as_string(hide_password=True)
    sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if sqlite_file and not Path(str(url.database)).expanduser().exists():
        return fail(name, f"{where} does not exist yet: run `voice-agent db upgrade`")
    engine = make_engine(settings, connect_timeout_seconds=timeout)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        return fail(name, f"{where} could not be reached ({type(exc).__name__})")
    finally:
        engine.dispose()
    head = head_revision()
    if current != head:
        return fail(
            name,
            f"{where} is at {current or 'no revision'}, the code at {head}: run `voice-agent db upgrade`",
        )
    return ok(name, f"{where} at {head} (head)")


def check_broker(settings: Settings, timeout: float) -> CheckResult:
    """Redis answers PING; without `REDIS_URL`, the embedded queue's folder is writable."""
    name = "broker"
    if settings.redis_url:
        where = _host(settings.redis_url)
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            return fail(name, f"Redis at {where} did not answer PING ({type(exc).__name__})")
        finally:
            client.close()
        return ok(name, f"Redis at {where} answered PING")
    folder = settings.data_dir.resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return fail(name, f"the embedded queue's folder {folder} is not writable ({type(exc).__name__})")
    return ok(name, f"embedded queue in {folder} (one machine only; set REDIS_URL for more)")
