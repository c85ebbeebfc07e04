"""The load bench's measuring core, run small against the real relay: the instrument itself is tested.

Two calls for a few seconds through the relay in its own process, the simulator in another and one load
worker in a third (Pipecat is not installed in CI, so only the relay). The figures must be found and sane;
their size is not judged here (performance figures live in bench/, and this box may be busy).
"""

from __future__ import annotations

from bench._load_figures import figures
from bench._load_model import ModelConfig
from bench._load_point import PointPlan, run_point

WINDOW_SECONDS = 4.0


def test_two_calls_through_the_relay_give_sane_figures() -> None:
    result = run_point(
        PointPlan(peer="relay", calls=2, seconds=WINDOW_SECONDS, model=ModelConfig(delta_ms=20), probes=1)
    )
    column = figures(result)

    assert column.errors == []
    assert column.inbound is not None and column.outbound is not None
    # Bursts leave every 200 ms each way: most of the window's are found and matched at the far end.
    expected = 2 * WINDOW_SECONDS / 0.2
    assert column.inbound.count >= 0.7 * expected
    # The model is quiet between replies and after barge-ins, so judge the other way by what it sent: the
    # relay drops only the in-flight tail of an interrupted reply.
    assert column.outbound_sent >= 0.2 * expected
    assert column.outbound.count >= 0.7 * column.outbound_sent
    assert column.inbound_lost == 0
    for found in (column.inbound, column.outbound):
        assert 0.0 <= found.p50 < 100.0  # loopback; generous for a busy machine
        assert found.p50 <= found.p99 <= found.p999 <= found.max
    # The probe call placed during the window heard the greeting (the model needs 300 ms to start).
    assert column.greeting is not None and column.greeting.count == 1 and column.greeting.p50 >= 300.0
    assert column.cpu_per_call_second > 0.0
    assert column.worker_load > 0.0 and column.model_load > 0.0
    # Every call got its own model session, and the relay's stream to each stayed up.
    sessions = [record.session for record in result.records if not record.probe]
    assert len(set(sessions)) == 2 and None not in sessions
    assert not any(record.closed_early for record in result.records)
