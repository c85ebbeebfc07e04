"""`voice-agent flower`: Flower (PyPI `flower`) on the configured broker, behind HTTP basic auth.

Flower shows the workers, the tasks they run and their history from Celery's events, and can control
workers (pool size, revoke, shut down): so it never runs without credentials. `FLOWER_BASIC_AUTH`
(`user:password`, comma-separated for several users, passwords of 8+ characters) is required; the command
refuses to start without it, and the credentials are handed to Flower in process, never on a command line
another user could read. Flower's own `/healthcheck` and `/metrics` answer without auth (its design), so
keep the port private: it listens on `FLOWER_ADDRESS` (127.0.0.1 by default; `::` in fly.toml, where the
`flower` group has no service), reached with `fly proxy 5555 -a <app> --select` (pick the flower
machine).

Celery's events travel over broker fanout, which only Redis offers here: with the embedded queue
(no `REDIS_URL`) there is nothing for Flower to watch, and it says so.
"""

from __future__ import annotations

import argparse
import sys

from app.logs import configure_logging
from app.settings import Settings, load_settings

MIN_PASSWORD_CHARS = 8
# Flower keeps task history in memory; its default (100 000) grew memory without bound for some users.
MAX_TASKS_IN_MEMORY = 10_000


class FlowerSettingsError(RuntimeError):
    """Flower cannot run with these settings (no credentials, weak ones, no Redis)."""


def flower_credentials(settings: Settings) -> str:
    """The validated `user:password[,user:password]` list; the error never repeats the secret."""
    if settings.flower_basic_auth is None:
        raise FlowerSettingsError(
            "FLOWER_BASIC_AUTH is not set: Flower can control workers, so it only runs behind basic auth "
            "(FLOWER_BASIC_AUTH=user:password)"
        )
    value = settings.flower_basic_auth.get_secret_value().strip()
    for pair in value.split(","):
        user, _, password = pair.partition(":")
        if not user.strip() or len(password) < MIN_PASSWORD_CHARS:
            raise FlowerSettingsError(
                "FLOWER_BASIC_AUTH must be user:password pairs separated by commas, each password at "
                f"least {MIN_PASSWORD_CHARS} characters"
            )
    return value


def flower_argv(settings: Settings, credentials: str) -> list[str]:
    """The `celery flower` arguments for these settings."""
    return [
        "flower",
        f"--port={settings.flower_port}",
        f"--address={settings.flower_address}",
        f"--basic-auth={credentials}",
        f"--max-tasks={MAX_TASKS_IN_MEMORY}",
        "--purge-offline-workers=300",
    ]


def run_flower(_args: argparse.Namespace) -> int:
    """Run Flower in this process until SIGTERM."""
    settings = load_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    try:
        credentials = flower_credentials(settings)
        if not settings.redis_url:
            raise FlowerSettingsError(
                "REDIS_URL is not set: Flower reads Celery's events, which need Redis (the embedded queue "
                "has none)"
            )
    except FlowerSettingsError as exc:
        print(f"flower: {exc}", file=sys.stderr)
        return 2
    from workers.celery_app import make_celery

    app = make_celery(settings)  # the worker's app: Flower lists our task names
    code = app.start(flower_argv(settings, credentials))
    return int(code or 0)


def add_flower_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `flower` on the CLI."""
    flower = subparsers.add_parser(
        "flower", help="Flower for the task queue, behind basic auth (FLOWER_BASIC_AUTH, FLOWER_PORT)"
    )
    flower.set_defaults(handler=run_flower)
