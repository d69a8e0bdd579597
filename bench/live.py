"""Live server processes (Daphne or Uvicorn serving logfleet.asgi on a free port) and one JSON request
helper: the harness of the benchmarks and of the live tests."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_test_db() -> str:
    """The URL of the database the tests run on, so that server processes share it."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class LiveServer:
    """A server process (Daphne, or Uvicorn for comparisons) serving logfleet.asgi on a free port,
    sharing the tests' database and Redis."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        access_log: bool = True,
        redis: bool = True,
        port: int | None = None,
        server: str = "daphne",
        workers: int = 1,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "DATABASE_URL": database_url_of_test_db(),
            "SECRET_KEY": settings.SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
        }
        # The tests' Redis unless told otherwise: `redis=False` for none, or REDIS_URL in `env`.
        full_env.pop("REDIS_URL", None)
        if settings.REDIS_URL and redis:
            full_env["REDIS_URL"] = settings.REDIS_URL
        full_env.update(env or {})
        self.log = open(BASE_DIR / f".live-server-{self.port}.log", "w+")  # noqa: SIM115
        if server == "uvicorn":
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--lifespan",
                "off",
                # Uvicorn would trust X-Forwarded-* from 127.0.0.1 itself; LogFleet decides that
                # (TRUSTED_PROXY_COUNT), as the README's production recipe runs it.
                "--no-proxy-headers",
                "--workers",
                str(workers),
            ]
            if not access_log:
                command.append("--no-access-log")
        else:
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
            if not access_log:
                command += ["--access-log", os.devnull]
        self.process = subprocess.Popen(
            [*command, "logfleet.asgi:application"],
            cwd=BASE_DIR,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.output()}")

    def output(self, *, full: bool = False) -> str:
        self.log.flush()
        self.log.seek(0)
        text = self.log.read()
        return text if full else text[-4000:]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def http_json(url: str, body=None, headers: dict | None = None, method: str | None = None) -> tuple[int, object]:
    """One JSON request to a live server: (status, decoded body), also for 4xx/5xx answers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
