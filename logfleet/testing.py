"""Helpers the test suites (and the benchmarks) of every app share: the resource battery and
live server processes."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

BASE_DIR = Path(settings.BASE_DIR)


def assert_error(response, status: int, error: str | None = None):
    """The response has `status` and the error envelope (with `error` when given)."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = response.json()
    assert set(body) == {"error", "message", "details"}, body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["details"], dict), body
    if error is not None:
        assert body["error"] == error, body
    return body


@dataclass
class ResourceBattery:
    """The checks every resource gets (STYLE.md): auth required, list envelope, other organization → 404,
    role → 403.

    `make_in(org)` creates one object of the resource in an organization and returns its id;
    `write` is (method, url, body) of one write the `forbidden_roles` may not do.
    """

    list_url: str
    detail_url: Callable[[object], str] | None = None
    make_in: Callable[[object], object] | None = None
    writes: list[tuple[str, str, dict | None]] = field(default_factory=list)
    forbidden_roles: tuple[str, ...] = ()
    read_roles: tuple[str, ...] = ("admin", "member", "viewer")

    def run(self, *, org, other_org, role_clients: dict[str, APIClient]):
        self.auth_required()
        self.list_envelope(role_clients["admin"], org)
        if self.detail_url is not None:
            self.other_organization_is_not_found(role_clients["admin"], other_org)
        self.roles(role_clients)

    def auth_required(self):
        anonymous = APIClient()
        assert_error(anonymous.get(self.list_url), 401, "not_authenticated")
        bad = APIClient()
        bad.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
        assert_error(bad.get(self.list_url), 401, "not_authenticated")
        for method, url, body in self.writes:
            assert_error(getattr(anonymous, method)(url, body, format="json"), 401, "not_authenticated")

    def list_envelope(self, client, org):
        if self.make_in is not None:
            for _ in range(3):
                self.make_in(org)
        r = client.get(self.list_url, {"page_size": 2})
        assert r.status_code == 200, r.json()
        body = r.json()
        assert set(body) == {"items", "total", "page", "page_size"}, body
        assert body["page"] == 1 and body["page_size"] == 2
        assert len(body["items"]) == min(2, body["total"])
        assert client.get(self.list_url, {"page_size": 1000}).json()["page_size"] == 100
        past = client.get(self.list_url, {"page": 10_000}).json()
        assert past["items"] == [] and past["total"] == body["total"]
        for bad in ({"page": 0}, {"page": "x"}, {"page_size": 0}, {"page_size": "-3"}):
            assert_error(client.get(self.list_url, bad), 400, "validation_error")
        if self.make_in is not None:
            # Every item on every page exactly once, in a stable order.
            ids = []
            for page in range(1, body["total"] + 1):
                ids += [
                    item["id"] for item in client.get(self.list_url, {"page_size": 1, "page": page}).json()["items"]
                ]
            assert len(ids) == len(set(ids)) == body["total"]

    def other_organization_is_not_found(self, client, other_org):
        foreign_id = self.make_in(other_org)
        listed = client.get(self.list_url, {"page_size": 100}).json()["items"]
        assert str(foreign_id) not in {item["id"] for item in listed}
        assert_error(client.get(self.detail_url(foreign_id)), 404, "not_found")
        assert_error(client.get(self.detail_url(uuid.uuid4())), 404, "not_found")
        assert_error(client.get(self.detail_url("not-a-uuid")), 404, "not_found")
        for method in ("patch", "delete"):
            r = getattr(client, method)(self.detail_url(foreign_id), {}, format="json")
            if r.status_code != 405:  # a resource without that method reveals nothing either
                assert_error(r, 404, "not_found")

    def roles(self, role_clients):
        for role, client in role_clients.items():
            r = client.get(self.list_url)
            if role in self.read_roles:
                assert r.status_code == 200, (role, r.json())
            else:
                assert_error(r, 403, "permission_denied")
        for role in self.forbidden_roles:
            for method, url, body in self.writes:
                r = getattr(role_clients[role], method)(url, body, format="json")
                assert_error(r, 403, "permission_denied")


# --- live server processes -----------------------------------------------------------------


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
