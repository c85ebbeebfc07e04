"""A minimal SMTP server on a free loopback port that keeps what it is sent (unit and integration tests)."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class SmtpRecorder:
    messages: list[bytes] = field(default_factory=list)
    reject_code: int | None = None
    port: int = 0


@contextlib.contextmanager
def serve_smtp() -> Iterator[SmtpRecorder]:
    """Accept mail on 127.0.0.1 until the block ends; `reject_code` makes MAIL FROM fail with that code."""
    recorder = SmtpRecorder()

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, text: str) -> None:
            self.wfile.write(text.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 test ESMTP")
            lines: list[bytes] = []
            in_data = False
            while line := self.rfile.readline():
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        recorder.messages.append(b"".join(lines))
                        lines = []
                        self.reply("250 queued")
                    else:
                        lines.append(line[1:] if line.startswith(b"..") else line)
                    continue
                verb = line[:4].upper()
                if verb == b"EHLO":
                    self.reply("250-test\r\n250 OK")
                elif verb == b"MAIL" and recorder.reject_code:
                    self.reply(f"{recorder.reject_code} try later")
                elif verb == b"DATA":
                    in_data = True
                    self.reply("354 go ahead")
                elif verb == b"QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 OK")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
