"""`voice-agent`: serve | demo | call | worker | beat | dev | db | twilio configure | doctor."""

from __future__ import annotations

import argparse
import asyncio
import sys

from app.logs import configure_logging, settings_secrets
from app.metrics_server import MetricsPortError, serve_metrics
from app.settings import DEMO_BUSINESS, Settings, SettingsError, load_settings
from app.settings_errors import settings_guard


def serve(settings: Settings, host: str, port: int, *, demo_when_unset: bool = False) -> None:
    """Run the relay in this process until SIGTERM (draining live calls first).

    The demo office answers only with `BUSINESS_API_BASE=demo`, or when unset under `demo_when_unset`
    (`voice-agent dev`); production `serve` refuses an unset backend before it gets here.
    """
    from app.functions.business import BackendFactory, make_business_backend
    from app.main import create_app
    from app.server import run_relay
    from app.sinks import make_sink

    if settings.metrics_port == port:
        raise MetricsPortError(f"METRICS_PORT ({port}) must not be the public port: metrics stay private")
    business: BackendFactory = make_business_backend
    base = settings.business_api_base
    if base == DEMO_BUSINESS or (base is None and demo_when_unset):
        from app.sim.demo_business import demo_backend

        business = demo_backend
    sink = make_sink(settings)
    metrics_server = None
    try:
        app = create_app(settings, sink=sink, business=business)
        if settings.metrics_port:  # prometheus-client's own server, in a thread: off the public port and loop
            registry = app.state.metrics.registry
            metrics_server = serve_metrics(registry, settings.metrics_host, settings.metrics_port)
        run_relay(app, host=host, port=port, drain_seconds=settings.drain_seconds)
    finally:
        if metrics_server is not None:
            metrics_server.close()
        sink.close()


def relay_refusals(settings: Settings) -> list[str]:
    """Why `serve` must not start with these settings (empty when it may)."""
    problems = settings.production_problems()
    if settings.openai_api_key is None:
        problems.append("OPENAI_API_KEY is not set: the relay needs a model key (try `voice-agent demo`)")
    if settings.business_api_base is None:
        problems.append(
            "BUSINESS_API_BASE is not set: the relay would confirm bookings that exist nowhere; give the "
            "backend's URL (docs/business-api.yaml), or `demo` for the built-in demo office on purpose"
        )
    return problems


def _serve_command(args: argparse.Namespace) -> int:
    settings = load_settings()
    problems = relay_refusals(settings)
    if problems:
        raise SettingsError(problems)
    configure_logging(settings.log_level, json_lines=settings.log_json, secrets=settings_secrets(settings))
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
        business=args.business,
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
    demo.add_argument(
        "--business", choices=["dental", "salon"], default="dental", help="which demo business answers"
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

    from app.deploy_cli import register as register_deploy_commands

    register_deploy_commands(commands)

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
        result: int = settings_guard("voice-agent", lambda: args.handler(args))
    except MetricsPortError as exc:
        print(f"voice-agent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
