"""The webhooks' edge: unsigned requests are refused unread, bodies are capped and must arrive in time,
slow headers are cut off, forms are parsed with tight limits, and none of it reaches a live call."""

from __future__ import annotations

import asyncio
import io
import logging

import httpx
import structlog

from app.logs import configure_logging
from app.sim.harness import PUBLIC_BASE_URL, local_stack
from app.twilio.signature import sign
from tests.e2e.calls import answered, speak_and_hear_reply
from tests.e2e.edge_server import production_server, raw_exchange, status_of

MB = 1024 * 1024


def _post_head(path: str, length: int | None, *, signed: bool = True, chunked: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: relay.example.test", "Connection: close"]
    lines.append("Content-Type: application/x-www-form-urlencoded")
    if signed:
        lines.append("X-Twilio-Signature: bm90LWEtcmVhbC1zaWduYXR1cmU=")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def test_an_unsigned_webhook_is_refused_before_its_body_is_read() -> None:
    async with production_server() as edge:
        # 100 MB announced, not one byte of it sent: the answer comes anyway, and the connection closes.
        response, _ = await raw_exchange(
            edge.host, edge.port, _post_head("/twilio/incoming", 100 * MB, signed=False)
        )
        assert status_of(response) == 403


async def test_an_oversized_body_is_refused_by_its_length_and_while_streaming() -> None:
    async with production_server() as edge:
        declared, _ = await raw_exchange(edge.host, edge.port, _post_head("/twilio/incoming", 20 * MB))
        assert status_of(declared) == 413
        # Chunked, no length: refused once the cap is passed, long before 4 MB have gone.
        chunks = [_chunk(b"a" * 16384) for _ in range(256)]
        streamed, _ = await raw_exchange(
            edge.host, edge.port, _post_head("/twilio/incoming", None, chunked=True), chunks, pause=0.001
        )
        assert status_of(streamed) == 413


async def test_a_body_trickled_a_byte_at_a_time_is_cut_off() -> None:
    async with production_server(http_read_timeout_seconds=0.5) as edge:
        head = _post_head("/twilio/incoming", 2000)
        response, took = await raw_exchange(edge.host, edge.port, head, [b"a"] * 40, pause=0.1, timeout=5)
        assert status_of(response) == 408
        assert took < 3


async def test_headers_trickled_a_byte_at_a_time_are_cut_off() -> None:
    async with production_server(http_read_timeout_seconds=0.5) as edge:
        request = _post_head("/twilio/incoming", 10)
        response, took = await raw_exchange(
            edge.host, edge.port, request[:1], [bytes([b]) for b in request[1:]], pause=0.1, timeout=5
        )
        assert response == b"" and took < 3  # closed without an answer, long before the headers finished
        # A client that connects and says nothing is closed too.
        silent, took = await raw_exchange(edge.host, edge.port, b"", timeout=5)
        assert silent == b"" and took < 3


async def test_a_form_with_too_many_fields_is_refused_unparsed() -> None:
    async with production_server() as edge:
        flood = "&".join(f"f{i}=%41%41" for i in range(2000))
        async with httpx.AsyncClient(trust_env=False) as http:
            response = await http.post(
                f"{edge.url}/twilio/incoming",
                content=flood,
                headers={"X-Twilio-Signature": "x", "Content-Type": "application/x-www-form-urlencoded"},
            )
        assert response.status_code == 403


async def test_docs_and_openapi_are_not_served() -> None:
    async with production_server() as edge, httpx.AsyncClient(trust_env=False) as http:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert (await http.get(edge.url + path)).status_code == 404


async def _logged_client(forwarded_allow_ips: str) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("INFO", json_lines=True)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        async with production_server(forwarded_allow_ips=forwarded_allow_ips) as edge:
            async with httpx.AsyncClient(trust_env=False) as http:
                await http.get(edge.url + "/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
    finally:
        root.handlers, level = saved  # leave logging as the next test expects it
        root.setLevel(level)
        structlog.reset_defaults()
    lines = [line for line in stream.getvalue().splitlines() if '"http_request"' in line]
    assert lines, stream.getvalue()
    return lines[-1]


async def test_forwarded_for_is_trusted_only_from_the_configured_proxy() -> None:
    assert '"client": "127.0.0.1"' in await _logged_client("192.0.2.1")
    assert '"client": "203.0.113.9"' in await _logged_client("127.0.0.1")


async def test_a_flood_of_bad_webhooks_does_not_reach_a_live_call() -> None:
    async with local_stack(first_audio_delay=0.05, realtime_factor=1.0) as stack:
        host, port = "127.0.0.1", int(stack.relay_url.rsplit(":", 1)[1])
        statuses: list[int | None] = []

        async def flood() -> None:
            forged_form = "&".join(f"Field{i}={'%41' * 300}" for i in range(20))  # ~30 KB percent-encoded
            for _ in range(6):
                batch = [
                    raw_exchange(host, port, _post_head("/twilio/incoming", 20 * MB, signed=False)),
                    raw_exchange(host, port, _post_head("/twilio/incoming", 20 * MB)),
                    raw_exchange(
                        host,
                        port,
                        _post_head("/twilio/transfer/done", None, chunked=True),
                        [_chunk(b"b" * 16384)] * 64,
                    ),
                    raw_exchange(
                        host,
                        port,
                        _post_head("/twilio/incoming", len(forged_form)) + forged_form.encode(),
                    ),
                ]
                for response, _ in await asyncio.gather(*batch):
                    statuses.append(status_of(response))

        async with stack.caller() as caller:
            await answered(caller)
            flooding = asyncio.create_task(flood())
            try:
                said = await caller.wait_said(timeout=5)
                heard = await speak_and_hear_reply(caller)
                await caller.wait_agent_silent(quiet=0.3, timeout=15)
            finally:
                await flooding
            assert not caller.closed_by_relay.is_set()
            reply = [p for p in caller.played if p.started_at >= heard]
        assert heard - said < 10
        gaps = [
            b.started_at - (a.started_at + len(a.audio) / 8000)
            for a, b in zip(reply, reply[1:], strict=False)
        ]
        assert max(gaps, default=0.0) < 0.5, "the reply's audio stalled while the webhook was flooded"
        assert statuses.count(403) == 12 and statuses.count(413) == 12, statuses


async def test_a_signed_transfer_callback_with_malformed_parameters_gets_a_4xx() -> None:
    async with local_stack() as stack, httpx.AsyncClient(trust_env=False) as http:
        token = stack.settings.auth_token()
        cases = [
            ("/twilio/transfer/done?segment=abc", {"CallSid": "CA" + "1" * 32, "DialCallStatus": "busy"}),
            (
                "/twilio/transfer/done?ctx=garbage",
                {"CallSid": "CA" + "1" * 32, "DialCallStatus": "no-answer"},
            ),
            ("/twilio/transfer/done", {"CallSid": "CA" + "1" * 32, "DialCallStatus": "exploded"}),
            ("/twilio/transfer/done", {"CallSid": "not-a-sid", "DialCallStatus": "busy"}),
            ("/twilio/transfer/whisper?brief=hi", {"CallSid": "CA" + "1" * 32}),
            ("/twilio/transfer/answer?ctx=%ff", {"ParentCallSid": "CA" + "2" * 32, "Digits": "9"}),
            ("/twilio/transfer/answer", {"ParentCallSid": "CA-bad", "Digits": "9"}),
        ]
        for path, form in cases:
            headers = {"X-Twilio-Signature": sign(token, PUBLIC_BASE_URL + path, form)}
            response = await http.post(stack.relay_url + path, data=form, headers=headers)
            assert 400 <= response.status_code < 500, (path, response.status_code)
        assert stack.relay.calls == {}
