"""`voice-agent`: serve | demo | call | worker | beat | dev | db."""

from __future__ import annotations

import argparse
import asyncio
import sys

from app.logs import configure_logging
from app.settings import MissingSettingError, Settings, load_settings


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the relay in this process until SIGTERM (draining live calls first)."""
    from app.main import create_app
    from app.server import run_relay
    from app.sinks import make_sink

    sink = make_sink(settings)
    try:
        app = create_app(settings, sink=sink)
        run_relay(app, host=host, port=port, drain_seconds=settings.drain_seconds)
    finally:
        sink.close()


def _serve_command(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    if settings.openai_api_key is None:
        raise MissingSettingError("OPENAI_API_KEY", "the relay needs a model key (try `voice-agent demo`)")
    serve(settings, args.host, args.port)
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    configure_logging("WARNING")
    if args.scenario is None and args.model != "script":
        from app.demo_engine import run_engine_demo

        return asyncio.run(
            run_engine_demo(
                out=args.out,
                transcript=args.transcript,
                lines=args.say,
                interactive=args.interactive,
                model=args.model,
                audio_format=args.format,
                backoffice=not args.no_backoffice,
            )
        )
    demo = run_demo(
        out=args.out,
        transcript=args.transcript,
        audio_format=args.format,
        scenario=args.scenario or "booking",
        backoffice=not args.no_backoffice,
    )
    return asyncio.run(demo)


def _engine_command(args: argparse.Namespace) -> int:
    from app.sim.engine.server import run_engine

    configure_logging("WARNING")
    return run_engine(args.host, args.port)


def _call_command(args: argparse.Namespace) -> int:
    from app.sim.call_command import run_call

    configure_logging("WARNING")
    return asyncio.run(run_call(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voice-agent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the relay (Twilio webhook + media streams)")
    serve_parser.add_argument("--host", default="0.0.0.0")
    serve_parser.add_argument("--port", type=int, default=8080)
    serve_parser.set_defaults(handler=_serve_command)

    demo = commands.add_parser("demo", help="a whole simulated call through the real relay, no keys needed")
    demo.add_argument("--out", default="demo-call.wav", help="stereo WAV: caller left, agent right")
    demo.add_argument("--transcript", default="demo-call.txt")
    demo.add_argument("--format", choices=["pcmu", "pcm16"], default="pcmu", help="model audio format")
    from app.sim.demo_scenarios import SCENARIOS

    demo.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=None,
        help="a scripted call (exact, repeatable): a booking, a warm transfer, an agent hang-up, an idle "
        "caller, a capped call",
    )
    demo.add_argument(
        "--model",
        choices=["engine", "openai", "script"],
        default="engine",
        help="who answers: the offline engine (default), OpenAI's Realtime API (needs OPENAI_API_KEY), "
        "or the scripted simulator",
    )
    demo.add_argument("--say", action="append", metavar="TEXT", help="a caller line (repeat for more)")
    demo.add_argument(
        "--interactive", action="store_true", help="type the caller's lines one at a time, hear each reply"
    )
    demo.add_argument(
        "--no-backoffice",
        action="store_true",
        help="skip the outbox, worker and database (by default the call is stored and summarised)",
    )
    demo.set_defaults(handler=_demo_command)

    engine = commands.add_parser("engine", help="an offline speech engine speaking the Realtime protocol")
    engine.add_argument("--host", default="127.0.0.1")
    engine.add_argument("--port", type=int, default=9100)
    engine.set_defaults(handler=_engine_command)

    from app.sim.call_command import add_call_arguments

    call = commands.add_parser("call", help="dial a running relay as a simulated Twilio caller")
    add_call_arguments(call)
    call.set_defaults(handler=_call_command)

    try:
        from workers.cli import register
    except ImportError:  # the worker side is optional in a relay-only install
        pass
    else:
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except MissingSettingError as exc:
        print(f"voice-agent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
