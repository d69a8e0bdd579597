"""Helpers the test suites of every app share: the error-envelope assertion and the resource battery.
(Live server processes are in bench.live, shared with the benchmarks.)"""

import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
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


def manage_py(*args: str, env: dict, input: str | None = None) -> subprocess.CompletedProcess:
    """`manage.py` in a fresh process with exactly `env` (and a PATH): how settings are read at start."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={"PATH": "/usr/bin:/bin", **env},
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- browser tests (UI.md) -------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


def browser_required() -> bool:
    """CI (`.ci/run`) installs Debian's Chromium and sets LOGFLEET_REQUIRE_BROWSER=1: there a missing
    browser fails the suite instead of skipping the browser tests."""
    import os

    return os.environ.get("LOGFLEET_REQUIRE_BROWSER") == "1"


def browser_session_cookie(user, url: str) -> dict:
    """A Playwright cookie that signs a browser in as `user`: a LogFleet session started exactly as
    the sign-in page starts one (accounts.browser), without a round of the rate-limited form."""
    from django.conf import settings as django_settings
    from django.contrib.sessions.backends.db import SessionStore

    from accounts import services
    from accounts.browser import SESSION_KEY

    pair = services.session_start(user=user)
    store = SessionStore()
    store[SESSION_KEY] = pair.session_id
    store.create()
    return {"name": django_settings.SESSION_COOKIE_NAME, "value": store.session_key, "url": url, "httpOnly": True}


def browser_client(user):
    """A Django test Client signed in as `user` the way the sign-in page signs a browser in (a
    LogFleet session held in Django's session), without a round of the rate-limited form."""
    from django.test import Client

    from accounts import services
    from accounts.browser import SESSION_KEY

    client = Client()
    session = client.session
    session[SESSION_KEY] = str(services.session_start(user=user).session_id)
    session.save()
    return client


# --- the Prometheus tests (metrics/tests/test_prometheus_live.py) -----------------------------

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")


def prometheus_required() -> bool:
    """CI (`.ci/run`) installs Debian's prometheus and sets LOGFLEET_REQUIRE_PROMETHEUS=1: there a
    missing binary fails the suite instead of skipping the Prometheus test."""
    import os

    return os.environ.get("LOGFLEET_REQUIRE_PROMETHEUS") == "1"
