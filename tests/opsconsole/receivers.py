"""Real receivers for the notification tests: an HTTP server on a free port that checks
the HMAC signature like a customer's endpoint would, and an in-process SMTP server
(aiosmtpd)."""

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpReceiver:
    """Records each POST; answers 500 to the first `fail_first` (or every one when -1)."""

    def __init__(self, secret: str = ""):
        self.secret = secret
        self.fail_first = 0
        self.received: list[dict] = []  # {"body", "headers", "signature_ok", "status"}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 200
                if receiver.fail_first == -1 or len(receiver.received) < receiver.fail_first:
                    status = 500
                receiver.received.append(
                    {
                        "body": json.loads(body),
                        "headers": dict(self.headers),
                        "signature_ok": receiver.verify(self.headers, body),
                        "status": status,
                    }
                )
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"receiver down")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verify(self, headers, body: bytes) -> bool:
        """What a receiver does: recompute HMAC-SHA256(secret, timestamp + "." + body)."""
        timestamp = headers.get("X-OpsConsole-Timestamp", "")
        given = headers.get("X-OpsConsole-Signature", "")
        if not self.secret or abs(time.time() - int(timestamp or 0)) > 300:
            return False
        mac = hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        return hmac.compare_digest(given, f"sha256={mac.hexdigest()}")

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} requests came"
            time.sleep(0.05)
        return self.received

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def http_receiver():
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()
