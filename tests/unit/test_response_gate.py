"""One response at a time: requests wait for response.done; races are retried."""

from __future__ import annotations

import json

from app.calls.responses import ResponseGate, ResponseRequest


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    async def __call__(self, text: str) -> None:
        self.sent.append(json.loads(text))


async def test_second_request_waits_for_response_done() -> None:
    wire = Recorder()
    gate = ResponseGate(wire)
    await gate.request(ResponseRequest(purpose="greeting"))
    await gate.request(ResponseRequest(purpose="filler"))
    assert [e["type"] for e in wire.sent] == ["response.create"]
    gate.on_created("resp_1")
    await gate.on_done("resp_1")
    assert [e["type"] for e in wire.sent] == ["response.create", "response.create"]


async def test_vad_reply_supersedes_a_queued_tool_result_request() -> None:
    wire = Recorder()
    gate = ResponseGate(wire)
    gate.on_created("resp_vad_1")  # caller spoke; the server started a reply itself
    await gate.request(ResponseRequest(supersedable=True, purpose="tool_result"))
    gate.on_created("resp_vad_2")  # impossible while active, but a later VAD reply sees the output
    await gate.on_done("resp_vad_2")
    assert wire.sent == []


async def test_race_error_requeues_our_request() -> None:
    wire = Recorder()
    gate = ResponseGate(wire)
    await gate.request(ResponseRequest(purpose="dtmf"))
    await gate.on_race_error()
    assert not gate.busy
    gate.on_created("resp_vad")
    await gate.on_done("resp_vad")
    assert len(wire.sent) == 2


async def test_cancel_only_while_active_and_only_once() -> None:
    wire = Recorder()
    gate = ResponseGate(wire)
    assert await gate.cancel_active() is None
    gate.on_created("resp_1")
    assert await gate.cancel_active() == "resp_1"
    assert await gate.cancel_active() is None
    assert wire.sent == [{"type": "response.cancel", "response_id": "resp_1"}]


async def test_a_dead_socket_leaves_the_gate_idle_and_the_request_finished() -> None:
    async def dead(text: str) -> None:
        raise ConnectionError("socket closed")

    gate = ResponseGate(dead)
    request = await gate.request(ResponseRequest(purpose="goodbye"))
    assert request.finished.is_set()
    assert not gate.busy
    await gate.wait_idle()
