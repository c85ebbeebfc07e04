"""`voice-agent worker | beat | dev | flower | db upgrade | db current | db failures | db forget`.

`register(subparsers)` adds the subcommands to the project's CLI; each sets `handler(args) -> int` (the exit
code) and loads settings itself. `python -m workers.cli ...` runs the same commands without app/cli.py,
which is how tests start real worker and beat processes.

`dev` is the one-machine mode: migrate the database, start a worker and a beat as child processes, and
serve the relay in this process; with no `REDIS_URL` all three meet in the embedded queue under
`DATA_DIR`, so nothing else needs to run. Ctrl-C stops all three.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

import redis
from sqlalchemy import select

from app.logs import configure_logging, get_logger, settings_secrets
from app.settings import Settings, SettingsError, load_settings
from app.settings_errors import settings_guard

CHILD_STOP_SECONDS = 30.0


def _settings(*, production_checked: bool = False) -> Settings:
    """This process's settings; with `production_checked`, refused where they would lose events."""
    settings = load_settings()
    if production_checked and settings.production_problems():
        raise SettingsError(settings.production_problems())
    configure_logging(settings.log_level, json_lines=settings.log_json, secrets=settings_secrets(settings))
    return settings


def _status(settings: Settings, text: str) -> None:
    """A status line on stderr: as is, or as a JSON log line with LOG_JSON (every line JSON)."""
    if settings.log_json:
        get_logger("workers.cli").warning(text)
    else:
        print(text, file=sys.stderr, flush=True)


def _raise_system_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def keep_our_logging(settings: Settings, level: str) -> None:
    """Celery configures logging itself unless a `setup_logging` receiver does: ours keeps one pipeline
    (JSON with LOG_JSON, library loggers at WARNING, secrets scrubbed) in the worker and its children."""
    from celery.signals import setup_logging

    def configure(**_: Any) -> None:
        configure_logging(level, json_lines=settings.log_json, secrets=settings_secrets(settings))

    setup_logging.connect(configure, weak=False)


def run_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker in this process until it is stopped."""
    from app.metrics_server import MetricsPortError
    from workers.celery_app import QUEUE, make_celery
    from workers.metrics import start_worker_metrics

    settings = _settings(production_checked=True)
    keep_our_logging(settings, args.loglevel or settings.log_level)
    metrics_port = settings.worker_metrics_port if args.metrics_port is None else args.metrics_port
    try:  # before the pool forks: its children count into the files this sets up
        metrics = start_worker_metrics(settings, metrics_port) if metrics_port else None
    except MetricsPortError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    app = make_celery(settings, visibility_timeout_seconds=args.visibility_timeout)
    argv = [
        "worker",
        f"--loglevel={args.loglevel or settings.log_level}",
        f"--concurrency={args.concurrency}",
        f"--queues={QUEUE}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if args.name:
        argv.append(f"--hostname={args.name}")
    if settings.log_json:
        argv.insert(0, "--quiet")  # Celery prints its start-up banner as plain text, not through logging
    try:
        app.worker_main(argv)
    finally:
        if metrics is not None:
            metrics.close()
    return 0


def run_beat_command(args: argparse.Namespace) -> int:
    """Run the beat (the stuck-call sweep schedule) unless another beat already holds the lock."""
    from workers.beat import make_beat_lock, run_beat
    from workers.celery_app import make_celery

    settings = _settings(production_checked=True)
    lock = make_beat_lock(settings)
    deadline = time.monotonic() + args.wait_for_lock
    while True:
        try:
            acquired = lock.acquire()
        except redis.RedisError as exc:
            reason = type(exc).__name__
            _status(settings, f"beat: cannot reach Redis to take the beat lock ({reason}); not starting")
            return 2
        if acquired or time.monotonic() >= deadline:
            break
        time.sleep(2.0)
    if not acquired:
        _status(
            settings,
            f"beat: another beat is already running (lock held by {lock.holder()}); only one beat may run",
        )
        return 1
    signal.signal(signal.SIGTERM, _raise_system_exit)
    _status(settings, "beat: lock acquired; sweeping stuck calls")
    return run_beat(make_celery(settings), lock)


def run_dev(args: argparse.Namespace) -> int:
    """Relay + worker + beat on one machine (see the module docstring)."""
    from app.db.migrate import upgrade_database

    settings = _settings()
    upgrade_database(settings)
    children = [
        subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", "--concurrency", "2"]),
        subprocess.Popen([sys.executable, "-m", "workers.cli", "beat"]),
    ]
    try:
        # The relay's entry point lives in app/cli.py, which imports this module: resolve it at run time.
        serve = importlib.import_module("app.cli").serve
        serve(settings, args.host, args.port, demo_when_unset=True)
    except KeyboardInterrupt:
        pass
    finally:
        _stop_children(children)
    return 0


def _stop_children(children: list[subprocess.Popen[Any]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=CHILD_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_db_upgrade(_args: argparse.Namespace) -> int:
    """Apply the migrations up to the newest."""
    from app.db.migrate import current_revision, upgrade_database

    settings = _settings()
    upgrade_database(settings)
    print(f"database at revision {current_revision(settings)}")
    return 0


def run_db_current(_args: argparse.Namespace) -> int:
    """Print the database's revision and the newest one the code ships."""
    from app.db.migrate import current_revision, head_revision

    settings = _settings()
    current, head = current_revision(settings), head_revision()
    print(f"database: {current or 'empty'}; code: {head}")
    return 0 if current == head else 1


def run_db_failures(args: argparse.Namespace) -> int:
    """List tasks that finally failed, newest first."""
    from app.db.engine import make_engine, make_session_factory
    from app.db.models import FailedTask

    settings = _settings()
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(
                select(FailedTask)
                .where(FailedTask.resolved_at.is_(None))
                .order_by(FailedTask.failed_at.desc())
                .limit(args.limit)
            ).all()
    finally:
        engine.dispose()
    for row in rows:
        print(
            f"{row.failed_at:%Y-%m-%d %H:%M:%S} {row.task_name} call={row.call_sid or '-'} "
            f"effect={row.effect or '-'} attempts={row.attempts} {row.error_type}: {row.error_message}"
        )
    if not rows:
        print("no failed tasks")
    return 0


def run_db_forget(args: argparse.Namespace) -> int:
    """Delete everything stored about one caller (their calls, words, recordings) and say what went."""
    from app.db.engine import make_engine, make_session_factory
    from app.twilio.rest import TwilioRest
    from workers.effects.retention import forget_caller

    number = args.caller.strip()
    if not number:
        raise SettingsError(["--caller: expects the caller's number as Twilio gives it, e.g. +15551234567"])
    settings = _settings()
    engine = make_engine(settings)
    twilio = TwilioRest.from_settings(settings) if settings.twilio_account_sid else None
    try:
        removed = forget_caller(make_session_factory(engine), twilio, number)
    finally:
        engine.dispose()
        if twilio is not None:
            twilio.close()
    # The number is not printed back: terminal scrollback and CI logs outlive the request.
    print(f"removed {removed['calls']} calls of that caller:")
    for table, count in removed.items():
        print(f"  {table}: {count}")
    if removed["calls_kept_for_retry"]:
        print("some calls were kept: Twilio could not delete their recordings just now; run this again later")
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add `worker`, `beat`, `dev` and `db` to an argparse subparsers object."""
    worker = subparsers.add_parser("worker", help="run a Celery worker for the post-call side effects")
    worker.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    worker.add_argument("--loglevel", default=None, help="default: LOG_LEVEL")
    worker.add_argument(
        "--name", default=None, help="node name, e.g. worker1@%%h (needed for several per host)"
    )
    worker.add_argument(
        "--visibility-timeout",
        type=float,
        default=900.0,
        help="seconds before an unacknowledged task is redelivered; keep above the longest task + backoff",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus metrics port (default WORKER_METRICS_PORT, 9092; 0 turns it off)",
    )
    worker.set_defaults(handler=run_worker)

    beat = subparsers.add_parser("beat", help="run the scheduler that sweeps stuck calls (only one may run)")
    beat.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        help="seconds to keep trying for the lock (a crashed beat's lock expires within 60 s)",
    )
    beat.set_defaults(handler=run_beat_command)

    from workers.flower_command import add_flower_command

    add_flower_command(subparsers)

    dev = subparsers.add_parser("dev", help="relay + worker + beat on this machine, no servers needed")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(handler=run_dev)

    db = subparsers.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations").set_defaults(handler=run_db_upgrade)
    db_commands.add_parser("current", help="show the database revision").set_defaults(handler=run_db_current)
    failures = db_commands.add_parser("failures", help="list tasks that finally failed")
    failures.add_argument("--limit", type=int, default=50)
    failures.set_defaults(handler=run_db_failures)
    forget = db_commands.add_parser("forget", help="delete one caller's calls, transcripts and recordings")
    forget.add_argument("--caller", required=True, help="the caller's number, e.g. +15551234567")
    forget.set_defaults(handler=run_db_forget)


def main(argv: list[str] | None = None) -> int:
    """Run one of these commands without the project's CLI (`python -m workers.cli`)."""
    parser = argparse.ArgumentParser(prog="python -m workers.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = settings_guard("voice-agent", lambda: args.handler(args))
    return code


if __name__ == "__main__":
    sys.exit(main())
