"""A webhook receiver on 127.0.0.1 (a threaded http.server): what the notification tests and
`manage.py bench_alerts` deliver to. It keeps every request it got and answers each with the next
status of `answers` (then 204), so a test can make it fail first, after `delay` seconds (a slow
receiver)."""

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """Whether X-LogFleet-Signature is the HMAC-SHA256 of "<timestamp>.<body>" under `secret`,
        checked as the README tells a receiver to check it."""
        timestamp = self.headers["X-LogFleet-Timestamp"]
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers["X-LogFleet-Signature"], f"sha256={expected}")


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the listen backlog: every sender thread of every process connects at once
    daemon_threads = True


class Receiver:
    def __init__(self, answers: list[int] | None = None, *, record: bool = True, delay: float = 0.0):
        self.requests: list[Received] = []
        self.delay = delay
        self.answers = list(answers or [])
        self.record = record
        self.count = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.count += 1
                    if receiver.record:
                        receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    status = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/redirected")
                answer = b"" if status == 204 else f"answer {status}".encode()
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
