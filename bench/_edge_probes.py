"""The attacks of `bench.edge_bench`, each bounded in count and time, each judged "refused" or "survived".

A probe returns how many attempts it made and whether every one ended as it must: refused (the expected
4xx, close code or dropped connection) or survived (the relay went on, the attacked call too). Anything else
is reported as FAILED with what happened instead. Traffic goes to the relay on loopback only.

The bench runs each probe in its own process (`python -m bench._edge_probes NAME RELAY_URL AUTH_TOKEN`,
printing the outcome as JSON), so the attack's client work never stalls the process that carries the live
call and its simulated model: a gap the live caller hears is the relay's, not the attacker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from app.calls.caller import CallerInfo
from app.sim.harness import PUBLIC_BASE_URL
from app.sim.twilio_caller import SimulatedCaller
from app.twilio.signature import sign
from app.twilio.twiml import stream_parameters

MB = 1024 * 1024
FORGED_SIGNATURE = "bm90LWEtcmVhbC1zaWduYXR1cmU="
READ_TIMEOUT = 2.0  # HTTP_READ_TIMEOUT_SECONDS the bench gives the relay (production: 10)
START_TIMEOUT = 2.0  # STREAM_START_TIMEOUT_SECONDS the bench gives the relay (production: 5)


@dataclass(frozen=True)
class Target:
    """The relay under attack: where it listens and the auth token Twilio would sign with."""

    relay_url: str
    auth_token: str

    def caller(self) -> SimulatedCaller:
        return SimulatedCaller(
            relay_url=self.relay_url, public_base_url=PUBLIC_BASE_URL, auth_token=self.auth_token
        )


@dataclass(frozen=True)
class Outcome:
    count: int
    outcome: str  # "refused", "survived" or "FAILED: ..."


def judged(count: int, seen: Sequence[object], expected: object, verdict: str) -> Outcome:
    """`verdict` when every attempt saw `expected`, else FAILED with a tally of what was seen."""
    if len(seen) == count and all(item == expected for item in seen):
        return Outcome(count, verdict)
    tally = ", ".join(f"{value}: {n}" for value, n in Counter(map(str, seen)).most_common(4))
    return Outcome(count, f"FAILED: expected {expected} each time, saw {tally or 'nothing'}")


# --- raw HTTP ------------------------------------------------------------------------------------------


def post_head(path: str, length: int | None, *, signature: str | None = FORGED_SIGNATURE) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: relay.example.test", "Connection: close"]
    lines.append("Content-Type: application/x-www-form-urlencoded")
    if signature:
        lines.append(f"X-Twilio-Signature: {signature}")
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def exchange(
    relay: Target, head: bytes, body: Sequence[bytes] = (), *, pause: float = 0.0, timeout: float = 10
) -> tuple[int | None, float]:
    """Send `head`, then `body` pieces (`pause` s apart) until the relay answers or hangs up; returns the
    status (None: closed without an answer) and the seconds until the connection ended.

    A relay that answers 413 and closes while the client is still sending makes the client's kernel
    reset the connection, which can discard the answer: status -1 means the relay cut the body short (it
    reset the connection, or closed it before the body was all sent)."""
    host, port = relay.relay_url.removeprefix("http://").split(":")
    started = time.perf_counter()
    received = b""
    sent = 0
    reset = False
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        async with asyncio.timeout(timeout):
            writer.write(head)
            for piece in body:
                sent += 1
                if reader.at_eof() or writer.is_closing():
                    break
                writer.write(piece)
                await writer.drain()
                if pause:
                    with contextlib.suppress(TimeoutError):
                        received += await asyncio.wait_for(reader.read(65536), pause)
                    if received or reader.at_eof():
                        break
            while data := await reader.read(65536):
                received += data
    except ConnectionError:
        reset = True
    except TimeoutError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status = int(received[9:12]) if received.startswith(b"HTTP/1.1 ") else None
    if status is None and body and not pause and (reset or sent < len(body)):
        status = -1
    return status, time.perf_counter() - started


def cut_short(status: int | None) -> bool:
    """Refused as too large: 413, or the connection ended before the body was all sent."""
    return status in (413, -1)


async def in_batches(
    work: Sequence[Callable[[], Awaitable[tuple[int | None, float]]]], width: int
) -> list[tuple[int | None, float]]:
    """Run `work`, `width` at a time."""
    results: list[tuple[int | None, float]] = []
    for start in range(0, len(work), width):
        results += await asyncio.gather(*(job() for job in work[start : start + width]))
    return results


# --- webhooks ------------------------------------------------------------------------------------------

FORM = "CallSid=CA" + "0" * 32 + "&AccountSid=AC" + "0" * 32 + "&From=%2B15550001111&To=%2B15550002222"


async def unsigned_webhooks(relay: Target) -> Outcome:
    head = post_head("/twilio/incoming", len(FORM), signature=None) + FORM.encode()
    results = await in_batches([lambda: exchange(relay, head)] * 200, 20)
    return judged(200, [status for status, _ in results], 403, "refused")


async def forged_webhooks(relay: Target) -> Outcome:
    head = post_head("/twilio/incoming", len(FORM)) + FORM.encode()
    results = await in_batches([lambda: exchange(relay, head)] * 200, 20)
    return judged(200, [status for status, _ in results], 403, "refused")


async def oversized_by_length(relay: Target) -> Outcome:
    head = post_head("/twilio/incoming", 100 * MB)  # announced; the relay must not wait for it
    results = await in_batches([lambda: exchange(relay, head, [b"a" * 65536] * 16)] * 50, 10)
    return judged(50, [cut_short(status) for status, _ in results], True, "refused")


async def oversized_chunked(relay: Target) -> Outcome:
    body = [chunked(b"a" * 65536)] * 64  # up to 4 MB, no length announced
    results = await in_batches([lambda: exchange(relay, post_head("/twilio/incoming", None), body)] * 20, 5)
    return judged(20, [cut_short(status) for status, _ in results], True, "refused")


async def percent_encoded_floods(relay: Target) -> Outcome:
    """Four 20 MB percent-encoded bodies at once (refused by length), then 40 that fit the cap (parsed
    with field limits, refused by signature)."""
    big = post_head("/twilio/incoming", 20 * MB)
    piece = b"%41" * 21845
    large = await asyncio.gather(*(exchange(relay, big, [piece] * 320) for _ in range(4)))
    fitting = "&".join(f"F{i}={'%41' * 300}" for i in range(25)).encode()  # ~23 KB
    head = post_head("/twilio/incoming", len(fitting)) + fitting
    small = await in_batches([lambda: exchange(relay, head)] * 40, 10)
    seen = [cut_short(status) for status, _ in large] + [status == 403 for status, _ in small]
    return judged(len(seen), seen, True, "refused")


async def slow_headers(relay: Target, read_timeout: float = READ_TIMEOUT) -> Outcome:
    """50 connections trickling a request's headers one byte every 0.5 s: each must be cut off."""
    request = post_head("/twilio/incoming", 10)
    trickle = [bytes([byte]) for byte in request[1:]]
    results = await asyncio.gather(
        *(exchange(relay, request[:1], trickle, pause=0.5, timeout=read_timeout + 8) for _ in range(50))
    )
    cut_off = [status is None and took < read_timeout + 3 for status, took in results]
    return judged(50, cut_off, True, "refused")


async def slow_bodies(relay: Target, read_timeout: float = READ_TIMEOUT) -> Outcome:
    head = post_head("/twilio/incoming", 2000)
    results = await asyncio.gather(
        *(exchange(relay, head, [b"a"] * 60, pause=0.5, timeout=read_timeout + 8) for _ in range(50))
    )
    return judged(50, [status for status, _ in results], 408, "refused")


async def malformed_transfer_params(relay: Target) -> Outcome:
    cases = [
        ("/twilio/transfer/done?segment=abc", {"CallSid": "CA" + "1" * 32, "DialCallStatus": "busy"}),
        ("/twilio/transfer/done?ctx=garbage", {"CallSid": "CA" + "1" * 32, "DialCallStatus": "no-answer"}),
        ("/twilio/transfer/done", {"CallSid": "CA" + "1" * 32, "DialCallStatus": "exploded"}),
        ("/twilio/transfer/whisper?brief=x", {"CallSid": "CA" + "1" * 32}),
        ("/twilio/transfer/answer?ctx=%ff", {"ParentCallSid": "CA" + "2" * 32, "Digits": "9"}),
    ]
    statuses = []
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        for _ in range(10):
            for path, form in cases:
                headers = {"X-Twilio-Signature": sign(relay.auth_token, PUBLIC_BASE_URL + path, form)}
                response = await http.post(relay.relay_url + path, data=form, headers=headers)
                statuses.append(400 <= response.status_code < 500)
    return judged(len(statuses), statuses, True, "refused")


# --- streams -------------------------------------------------------------------------------------------


async def upgrades_without_start(relay: Target, start_timeout: float = START_TIMEOUT) -> Outcome:
    async def one() -> int | None:
        async with relay.caller() as caller:
            caller.stream_url = PUBLIC_BASE_URL.replace("https://", "wss://") + "/twilio/stream"
            await caller.connect(send_start=False)  # signed as Twilio would, but no webhook, no `start`
            return await caller.wait_closed_by_relay(timeout=start_timeout + 5)

    codes = await asyncio.gather(*(one() for _ in range(20)))
    return judged(20, list(codes), 1008, "refused")


async def _answered(caller: SimulatedCaller) -> None:
    await caller.dial()
    await caller.connect()
    await caller.wait_agent_audio(timeout=10)


async def second_starts(relay: Target) -> Outcome:
    """A second `start` on a bound stream: ignored, the call goes on (audio keeps flowing)."""
    alive = []
    for _ in range(5):
        async with relay.caller() as caller:
            await _answered(caller)
            await caller.send_start()
            frames = caller.frames_received
            await asyncio.sleep(1.0)
            alive.append(not caller.closed_by_relay.is_set() and caller.frames_received >= frames)
            await caller.hang_up()
    return judged(5, alive, True, "survived")


def _replay_of(relay: Target, original: SimulatedCaller) -> SimulatedCaller:
    replay = relay.caller()
    replay.call_sid, replay.stream_sid = original.call_sid, original.stream_sid
    replay.stream_url, replay.parameters = original.stream_url, dict(original.parameters)
    return replay


async def replayed_starts(relay: Target) -> Outcome:
    codes = []
    for _ in range(5):
        async with relay.caller() as caller:
            await _answered(caller)
            await caller.hang_up()
        await asyncio.sleep(0.2)  # the relay ends the call as the socket goes
        async with _replay_of(relay, caller) as replay:
            await replay.connect()
            codes.append(await replay.wait_closed_by_relay(timeout=5))
    return judged(5, codes, 1008, "refused")


async def expired_tokens(relay: Target) -> Outcome:
    codes = []
    for _ in range(5):
        async with relay.caller() as caller:
            await caller.dial()
            info = CallerInfo(caller.call_sid, caller.from_number, caller.to_number, caller.caller_state)
            caller.parameters = stream_parameters(relay.auth_token, info, issued_at=time.time() - 120)
            await caller.connect()
            codes.append(await caller.wait_closed_by_relay(timeout=5))
    return judged(5, codes, 1008, "refused")


MALFORMED = (
    "{not json",
    json.dumps({"event": "media", "media": {"payload": "***", "timestamp": "20"}}),
    json.dumps({"event": "media"}),
    json.dumps({"event": "surprise", "data": 1}),
    json.dumps({"event": "mark", "mark": {"name": "never-sent"}}),
    json.dumps({"event": "dtmf", "dtmf": {"digit": "not-a-digit"}}),
    "[]",
    "x" * 200_000,  # over MAX_FRAME_BYTES, under the socket's limit: skipped
)


async def malformed_frames(relay: Target) -> Outcome:
    alive = []
    for _ in range(3):
        async with relay.caller() as caller:
            await _answered(caller)
            for _ in range(25):
                for frame in MALFORMED:
                    await caller.send_raw(frame)
            await asyncio.sleep(0.5)
            alive.append(not caller.closed_by_relay.is_set())
            await caller.hang_up()
    return judged(3, alive, True, "survived")


async def frames_over_the_socket_limit(relay: Target) -> Outcome:
    """The socket is closed (1009; the caller may see 1006 when it was still sending) and the call with it."""
    ended = []
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        for _ in range(3):
            async with relay.caller() as caller:
                await _answered(caller)
                await caller.send_raw("x" * (MB + 1))
                code = await caller.wait_closed_by_relay(timeout=5)
                await asyncio.sleep(1.0)  # the call must be gone within a second
                gone = (
                    await http.get(f"{relay.relay_url}/bench/timings/{caller.call_sid}")
                ).status_code == 404
                ended.append(code in (1009, 1006) and gone)
    return judged(3, ended, True, "refused")


PROBES: dict[str, Callable[[Target], Coroutine[Any, Any, Outcome]]] = {
    "unsigned_webhooks": unsigned_webhooks,
    "forged_webhooks": forged_webhooks,
    "oversized_by_length": oversized_by_length,
    "oversized_chunked": oversized_chunked,
    "percent_encoded_floods": percent_encoded_floods,
    "slow_headers": slow_headers,
    "slow_bodies": slow_bodies,
    "upgrades_without_start": upgrades_without_start,
    "second_starts": second_starts,
    "replayed_starts": replayed_starts,
    "expired_tokens": expired_tokens,
    "malformed_frames": malformed_frames,
    "frames_over_the_socket_limit": frames_over_the_socket_limit,
    "malformed_transfer_params": malformed_transfer_params,
}


def main(argv: Sequence[str]) -> int:
    """Run one probe against a relay and print its outcome as one JSON line."""
    name, relay_url, auth_token = argv
    outcome = asyncio.run(PROBES[name](Target(relay_url, auth_token)))
    print(json.dumps({"count": outcome.count, "outcome": outcome.outcome}))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
