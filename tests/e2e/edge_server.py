"""The relay under its production uvicorn settings (`app.server.relay_config`), in this test's event loop,
and a raw HTTP client for requests no well-behaved library would send."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn

from app.calls.events import MemorySink
from app.main import create_app
from app.server import relay_config
from app.settings import Settings, load_settings
from app.sim.demo_business import demo_backend
from app.sim.harness import PUBLIC_BASE_URL, bound_port


@dataclass
class EdgeServer:
    settings: Settings
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def production_server(**overrides: Any) -> AsyncIterator[EdgeServer]:
    """The relay app (no model reachable: only the edge is exercised) on a free loopback port."""
    settings = load_settings(
        _env_file=None,
        openai_api_key="sk-sim",
        openai_base_url="http://127.0.0.1:9/v1",
        twilio_auth_token=secrets.token_hex(16),
        public_base_url=PUBLIC_BASE_URL,
        business_api_base=None,
        redis_url=None,
        **overrides,
    )
    app = create_app(settings, sink=MemorySink(), business=demo_backend)
    server = uvicorn.Server(relay_config(app, settings, host="127.0.0.1", port=0))
    task = asyncio.create_task(server.serve(), name="edge-server")
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield EdgeServer(settings, "127.0.0.1", bound_port(server))
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def raw_exchange(
    host: str,
    port: int,
    head: bytes,
    body_chunks: Sequence[bytes] = (),
    *,
    pause: float = 0.0,
    timeout: float = 5,
) -> tuple[bytes, float]:
    """Send `head` then each body chunk (`pause` s apart) until the server answers or closes; returns what
    the server sent and how long until it closed the connection."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection(host, port)
    received = b""
    try:
        writer.write(head)
        await writer.drain()
        for chunk in body_chunks:
            if reader.at_eof():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(chunk)
                await writer.drain()
            if pause:
                with contextlib.suppress(TimeoutError):
                    received += await asyncio.wait_for(reader.read(65536), pause)
                if received:
                    break
        async with asyncio.timeout(timeout):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                received += data
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return received, loop.time() - started


def status_of(response: bytes) -> int | None:
    """The status code of a raw HTTP response (None if the server sent nothing)."""
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response[9:12])
