"""`voice-agent twilio configure [--dry-run]` and `voice-agent doctor`: the deploying developer's commands.

`register(subparsers)` adds both to the project's CLI; each handler returns the exit code: 0 when done (or
all checks pass), 1 when Twilio or a check says no, 2 for a missing or invalid setting.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from app.settings import load_settings


def _twilio_configure(args: argparse.Namespace) -> int:
    from app.doctor.settings_check import describe_validation_error
    from app.twilio.number_setup import NumberSetupError, configure_number

    try:
        settings = load_settings()
    except ValidationError as exc:
        for line in describe_validation_error(exc):
            print(f"voice-agent: invalid setting {line}", file=sys.stderr)
        return 2
    try:
        plan = configure_number(settings, dry_run=args.dry_run)
    except NumberSetupError as exc:
        print(f"voice-agent: {settings.twilio_phone_number} not configured: {exc}", file=sys.stderr)
        return 1
    if not plan.changes:
        print(f"{plan.phone_number} ({plan.number_sid}) already points at this relay; nothing to change.")
        return 0
    verb = "would change" if args.dry_run else "changed"
    print(f"{plan.phone_number} ({plan.number_sid}) {verb}:")
    for change in plan.changes:
        print(f"  {change.field}: {change.old or '(empty)'} -> {change.new}")
    if args.dry_run:
        print("Dry run: nothing was changed on Twilio.")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from app.doctor.runner import run_doctor

    return run_doctor(timeout_seconds=args.timeout, out=print)


def register(subparsers: Any) -> None:
    """Add `twilio configure` and `doctor` to an argparse subparsers object."""
    twilio = subparsers.add_parser("twilio", help="set up the business's Twilio number")
    twilio_commands = twilio.add_subparsers(dest="twilio_command", required=True)
    configure = twilio_commands.add_parser(
        "configure",
        help="point TWILIO_PHONE_NUMBER's voice URL, fallback URL and status callback at PUBLIC_BASE_URL",
    )
    configure.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    configure.set_defaults(handler=_twilio_configure)

    doctor = subparsers.add_parser("doctor", help="check this configuration before a deploy")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds each check may take (default 5)")
    doctor.set_defaults(handler=_doctor)
