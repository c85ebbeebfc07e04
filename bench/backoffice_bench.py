"""Does staff use of the back office slow live calls? ``python -m bench.backoffice_bench [--quick]``.

The production relay runs in its own process with the back office on, over an SQLite database seeded with
thousands of stored calls. Live calls stream audio both ways (the relay bench's lean load peers) for one
window with the back office idle and one while a separate process plays busy staff: several clients at
once listing calls with a text search over every transcript, paging, and opening calls, back to back.
Printed: the one-way latency a frame picks up through the relay and the relay's CPU per frame, for both
windows, and how fast the back office answered meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvloop

from bench._relay_load import run_load
from bench._relay_load_peers import LoadModel
from bench._relay_process import relay_process
from bench._relay_stats import Row, render, spread

TOKEN = "bench-backoffice-token-0123456789"
WORDS = ("cleaning", "checkup", "whitening", "Tuesday", "Friday", "hours", "insurance", "cancel", "refund")


def seed(url: str, calls: int) -> float:
    """Migrate the database and store `calls` ended calls of 12 turns each; returns the seconds it took."""
    from app.db.engine import make_engine_for_url, make_session_factory
    from app.db.migrate import upgrade_database
    from app.db.models import Call, CallOutcome, CallSummary, TranscriptTurnRow
    from app.settings import load_settings

    started = time.perf_counter()
    upgrade_database(load_settings(_env_file=None, database_url=url))
    engine = make_engine_for_url(url)
    sessions = make_session_factory(engine)
    rng = random.Random(7)
    base = datetime.now(UTC) - timedelta(days=90)
    with sessions.begin() as session:
        for index in range(calls):
            sid = f"CA{index:032x}"
            start = base + timedelta(minutes=26 * index)
            session.add(
                Call(
                    call_sid=sid,
                    from_number=f"+1555{index:07d}",
                    status="ended",
                    started_at=start,
                    ended_at=start + timedelta(seconds=95),
                    end_reason="caller_hung_up",
                    model="gpt-realtime-mini",
                )
            )
            session.add(
                CallOutcome(call_sid=sid, outcome=rng.choice(["booked", "information_given"]), reasons=[])
            )
            session.add(CallSummary(call_sid=sid, text="A caller asked about an appointment.", method="llm"))
            for seq in range(1, 13):
                words = " ".join(rng.choice(WORDS) for _ in range(12))
                at = start + timedelta(seconds=7 * seq)
                session.add(
                    TranscriptTurnRow(
                        call_sid=sid,
                        seq=seq,
                        speaker="caller" if seq % 2 else "agent",
                        text=f"Well, {words}.",
                        started_at=at,
                        ended_at=at + timedelta(seconds=5),
                    )
                )
    engine.dispose()
    return time.perf_counter() - started


async def staff(url: str, seconds: float, clients: int, calls: int) -> dict[str, object]:
    """Busy staff for `seconds`: each client lists, searches, pages and opens calls back to back."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one(http: httpx.AsyncClient, rng: random.Random) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            choice = rng.random()
            if choice < 0.4:
                params = {"q": rng.choice(WORDS), "page": str(rng.randint(1, 20))}
                path = "/api/calls"
            elif choice < 0.7:
                params, path = {"page": str(rng.randint(1, 100))}, "/api/calls"
            else:
                params, path = {}, f"/api/calls/CA{rng.randrange(calls):032x}"
            sent = time.perf_counter()
            response = await http.get(url + path, params=params, headers=headers)
            latencies.append((time.perf_counter() - sent) * 1000)
            errors += response.status_code != 200

    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        await asyncio.gather(*(one(http, random.Random(n)) for n in range(clients)))
    return {"latencies": latencies, "errors": errors, "seconds": seconds}


async def run(args: argparse.Namespace) -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="backoffice-bench-"))
    url = f"sqlite:///{folder / 'bench.db'}"
    seeded = await asyncio.to_thread(seed, url, args.stored)
    rows = [Row("stored calls (12 turns each), seeded in", f"{args.stored} calls, {seeded:.1f} s")]
    model = LoadModel(first_audio_delay=0.3)
    await model.start()
    try:
        async with (
            relay_process(
                model.base_url, backoffice_token=TOKEN, database_url=url, data_dir=str(folder)
            ) as relay,
            httpx.AsyncClient(timeout=5, trust_env=False) as http,
        ):
            quiet = await run_load(relay, model, http, calls=args.calls, window=args.window, split=False)
            hammer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.backoffice_bench",
                "--staff",
                relay.relay_url,
                "--staff-seconds",
                str(args.window + 12),
                "--clients",
                str(args.clients),
                "--stored",
                str(args.stored),
                stdout=asyncio.subprocess.PIPE,
            )
            busy = await run_load(relay, model, http, calls=args.calls, window=args.window, split=False)
            out, _ = await hammer.communicate()
    finally:
        await model.stop()
    report = json.loads(out)
    for label, result in (("back office idle", quiet), ("staff busy", busy)):
        both = result.both
        for name, found in (
            ("caller -> model", both.inbound_latency),
            ("model -> caller", both.outbound_latency),
        ):
            rows.append(
                Row(f"{args.calls} calls, {label}: {name} one-way", found.text(digits=2) if found else "-")
            )
        cpu = f"{both.relay_us_per_frame:.0f} us / {both.relay_load * 100:.0f}% of a core"
        rows.append(Row("  relay CPU per frame / relay load", cpu))
        busy_box = " (busy box: latency inflated)" if both.others_load > 0.25 else ""
        rows.append(
            Row("  other processes on the machine", f"{both.others_load * 100:.0f}% of a core{busy_box}")
        )
    answered = spread(report["latencies"])
    rate = len(report["latencies"]) / report["seconds"]
    rows.append(
        Row(f"back office, {args.clients} staff clients: answers", answered.text() if answered else "-")
    )
    rows.append(Row("  requests answered / errors", f"{rate:.1f}/s / {report['errors']}"))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.backoffice_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer stored calls, shorter windows")
    parser.add_argument("--calls", type=int, default=20, help="live calls streaming during each window")
    parser.add_argument(
        "--clients", type=int, default=4, help="staff clients hitting the back office at once"
    )
    parser.add_argument("--stored", type=int, help="stored calls in the database")
    parser.add_argument("--window", type=float, help="seconds per measured window")
    parser.add_argument("--staff", help=argparse.SUPPRESS)  # child mode: play staff against this relay URL
    parser.add_argument("--staff-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.stored = args.stored or (1000 if args.quick else 5000)
    args.window = args.window or (4.0 if args.quick else 10.0)
    if args.staff:
        report = asyncio.run(staff(args.staff, args.staff_seconds, args.clients, args.stored))
        print(json.dumps(report))
        return 0
    started = time.perf_counter()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as the relay bench: a lean generator
        rows = runner.run(run(args))
    print(render("Live calls with the back office idle, then busy (median / p95 / max)", rows))
    print(f"\nran in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
