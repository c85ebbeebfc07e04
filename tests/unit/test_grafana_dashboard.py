"""docs/grafana-dashboard.json queries only metrics the code exposes (a renamed metric breaks this test,
not a dashboard nobody looks at until the night it matters)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import CollectorRegistry

from app.metrics import RelayMetrics, metric_families
from app.metrics_live import LIVE_FAMILIES, LiveCollector
from app.outbox.sink import OutboxStats
from app.settings import load_settings
from workers.celery_app import QUEUE
from workers.metrics import WorkerMetrics
from workers.queue_metrics import QueueCollector

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
SUFFIXES = re.compile(r"_(total|bucket|count|sum|created)$")


def _queried_families() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert expressions
    return {SUFFIXES.sub("", name) for expr in expressions for name in re.findall(r"voice_agent_\w+", expr)}


def _live_families() -> set[str]:
    relay = SimpleNamespace(live_calls=1, calls={}, draining=False)
    stats = OutboxStats(3, 3, 2, 1, 0.5, 0, 0, 0, 0, True)
    sink = SimpleNamespace(stats=lambda: stats)
    collector = LiveCollector(cast(Any, relay), sink)
    families = {family.name for family in collector.collect()}
    assert families == set(LIVE_FAMILIES)
    return families


def _worker_families(tmp_path: Path) -> set[str]:
    metrics = WorkerMetrics.create()
    registry = CollectorRegistry()
    for metric in (metrics.succeeded, metrics.retried, metrics.failed, metrics.runtime, metrics.calls_swept):
        registry.register(metric)
    registry.register(QueueCollector(load_settings(_env_file=None, data_dir=tmp_path), [QUEUE]))
    return metric_families(registry)


def test_every_metric_the_dashboard_queries_is_exposed(tmp_path: Path) -> None:
    exposed = metric_families(RelayMetrics().registry) | _live_families() | _worker_families(tmp_path)
    missing = _queried_families() - exposed
    assert not missing, f"the dashboard queries metrics no code exposes: {sorted(missing)}"


def test_the_dashboard_shows_every_relay_and_worker_metric(tmp_path: Path) -> None:
    exposed = metric_families(RelayMetrics().registry) | _live_families() | _worker_families(tmp_path)
    unused = exposed - _queried_families() - {"voice_agent_outbox_emitted"}
    assert not unused, f"metrics with no panel: {sorted(unused)}"


def test_panel_ids_are_unique() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
