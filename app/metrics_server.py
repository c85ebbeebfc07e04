"""Serving a Prometheus registry on its own port, off the public listener, from a daemon thread.

The relay (`METRICS_PORT`, 9091) and the workers (`--metrics-port`, 9092) each serve their registry with
prometheus-client's own HTTP server in a thread, so a scrape never runs on the relay's event loop and the
public port never answers `/metrics`. Bind it to a private address or keep the port out of any public
service (on Fly.io, only ports in `[http_service]`/`[[services]]` are public; the scraper reaches the
machine over the private network).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.registry import Collector


class MetricsPortError(RuntimeError):
    """The metrics port could not be bound (taken, or not allowed)."""


@dataclass
class MetricsServer:
    """A running metrics listener; `close()` stops it."""

    httpd: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve_metrics(registry: Collector, host: str, port: int) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics until `close()`; returns once the port is bound."""
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); choose another port "
            "(METRICS_PORT / --metrics-port) or 0 to turn the metrics listener off"
        ) from None
    return MetricsServer(httpd, thread)
