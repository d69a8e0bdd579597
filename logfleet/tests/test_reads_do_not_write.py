"""Reads do not write: a GET of any route of the URLconf, by anyone, changes no row of any table.

The world holds one of everything, sessions over but not yet written down included (a read shows
them as over, derived as of now; only write paths and timers write ends down). Every route is
walked, the admin's generated from its model admins, the others listed in GETS: a new route that
is not there fails the test. Each caller walks as it would be used: anonymous, each role's
JWT and an edge key on the API, an operator (and anonymous) on the admin. The credentials are used
once before the walk: recording a key's use (`last_used_at`, at most once a minute, API.md) is
authentication's write, whatever the method.
"""

import time
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tests.factories import AuditEventFactory, PasswordTokenFactory, UserFactory
from agents.models import Agent, AgentAnnouncement, KeyAnnouncement, NotificationAttempt
from agents.tests.factories import AgentFactory, NotificationChannelFactory, NotificationDeliveryFactory
from apikeys.keys import PERMISSIONS
from apikeys.models import APIKey
from apikeys.tests.factories import make_key
from conftest import client_for
from logfleet.testing import browser_client
from metrics.tests.factories import RULE
from streaming.models import EndReason, SessionStatus, StreamSession
from streaming.tests.factories import StreamSessionFactory

pytestmark = pytest.mark.django_db

# route (as the URLconf spells it) → the GETs sent to it; "{name}" is an object of the world.
GETS = {
    "api/v1/edge/agents/<uuid:agent_id>/heartbeat": ["/api/v1/edge/agents/{agent}/heartbeat"],
    "api/v1/edge/register": ["/api/v1/edge/register"],
    "api/v1/edge/heartbeat": ["/api/v1/edge/heartbeat"],
    "api/v1/edge/sync-config": ["/api/v1/edge/sync-config?agent_id={agent}", "/api/v1/edge/sync-config"],
    "api/v1/edge/agents/<uuid:agent_id>/metric-config": [
        "/api/v1/edge/agents/{agent}/metric-config",
        "/api/v1/edge/agents/{offline_agent}/metric-config",
    ],
    "api/v1/edge/agents/<uuid:agent_id>/metrics": ["/api/v1/edge/agents/{agent}/metrics"],
    "api/v1/edge/agents/<uuid:agent_id>/stream": ["/api/v1/edge/agents/{agent}/stream"],
    "api/v1/auth/register": ["/api/v1/auth/register"],
    "api/v1/auth/login": ["/api/v1/auth/login"],
    "api/v1/auth/refresh": ["/api/v1/auth/refresh"],
    "api/v1/auth/logout": ["/api/v1/auth/logout"],
    "api/v1/auth/forgot-password": ["/api/v1/auth/forgot-password"],
    "api/v1/auth/reset-password": ["/api/v1/auth/reset-password"],
    "api/v1/auth/change-password": ["/api/v1/auth/change-password"],
    "api/v1/auth/me": ["/api/v1/auth/me"],
    "api/v1/organization": ["/api/v1/organization"],
    "api/v1/^organization/members$": ["/api/v1/organization/members"],
    "api/v1/^organization/members/(?P<pk>[^/.]+)$": ["/api/v1/organization/members/{member}"],
    "api/v1/^audit-events$": [
        "/api/v1/audit-events",
        "/api/v1/audit-events?action=stream.started&actor={member}&since=2000-01-01T00:00:00Z",
    ],
    "api/v1/^api-keys$": [
        "/api/v1/api-keys",
        "/api/v1/api-keys?status=active",
        "/api/v1/api-keys?status=expired",
        "/api/v1/api-keys?status=revoked",
    ],
    "api/v1/^api-keys/(?P<pk>[^/.]+)$": ["/api/v1/api-keys/{key}"],
    "api/v1/^api-keys/(?P<pk>[^/.]+)/rotate$": ["/api/v1/api-keys/{key}/rotate"],
    "api/v1/^agents$": [
        "/api/v1/agents",
        "/api/v1/agents?status=online&label=env:prod&search=store&ordering=-last_heartbeat_at",
        "/api/v1/agents?status=offline",
    ],
    "api/v1/^agents/(?P<pk>[^/.]+)$": ["/api/v1/agents/{agent}", "/api/v1/agents/{offline_agent}"],
    "api/v1/^agents/(?P<pk>[^/.]+)/config$": ["/api/v1/agents/{agent}/config"],
    "api/v1/^notification-channels$": ["/api/v1/notification-channels"],
    "api/v1/^notification-channels/(?P<pk>[^/.]+)$": ["/api/v1/notification-channels/{channel}"],
    "api/v1/^notification-channels/(?P<pk>[^/.]+)/test$": ["/api/v1/notification-channels/{channel}/test"],
    "api/v1/^notification-channels/(?P<pk>[^/.]+)/deliveries$": [
        "/api/v1/notification-channels/{channel}/deliveries",
        "/api/v1/notification-channels/{channel}/deliveries?page=2&page_size=1",
    ],
    "api/v1/^metric-configs$": ["/api/v1/metric-configs", "/api/v1/metric-configs?enabled=true&log_source=*"],
    "api/v1/^metric-configs/test$": ["/api/v1/metric-configs/test"],
    "api/v1/^metric-configs/(?P<pk>[^/.]+)$": ["/api/v1/metric-configs/{config}"],
    "api/v1/metrics/names": ["/api/v1/metrics/names"],
    "api/v1/metrics/series": ["/api/v1/metrics/series", "/api/v1/metrics/series?name=hits_total&label=env:prod"],
    "api/v1/metrics/query": [
        "/api/v1/metrics/query?name=hits_total",
        "/api/v1/metrics/query?name=hits_total&step=60&agg=rate&group_by=agent_id,env",
        "/api/v1/metrics/query?name=took_seconds&agg=p99",
    ],
    "api/v1/metrics/export": ["/api/v1/metrics/export"],
    "api/v1/dashboard/summary": ["/api/v1/dashboard/summary"],
    "api/v1/stream/start": ["/api/v1/stream/start"],
    "api/v1/stream/stop": ["/api/v1/stream/stop"],
    "api/v1/stream/sessions": [
        "/api/v1/stream/sessions",
        "/api/v1/stream/sessions?agent_id={agent}",
        *(f"/api/v1/stream/sessions?status={status}" for status in SessionStatus.values),
    ],
    "api/v1/stream/sessions/<str:pk>": [
        "/api/v1/stream/sessions/{open_session}",
        "/api/v1/stream/sessions/{timed_out_session}",
        "/api/v1/stream/sessions/{idle_session}",
        "/api/v1/stream/sessions/{stopped_session}",
    ],
    "api/v1/schema": ["/api/v1/schema", "/api/v1/schema?format=json"],
    "api/v1/docs": ["/api/v1/docs"],
    "api/v1/docs/": ["/api/v1/docs/"],
    "healthz": ["/healthz"],
    "readyz": ["/readyz"],
    "admin": ["/admin"],
    "^(?!admin/|static/).*$": ["/nope", "/api/v1/nope"],
}
# The dashboard's pages (UI.md), walked by a signed-in browser of each role and an anonymous one.
PAGE_GETS = {
    "login": ["/login", "/login?next=/agents"],
    "logout": ["/logout"],
    "register": ["/register"],
    "forgot-password": ["/forgot-password"],
    "reset-password": ["/reset-password", "/reset-password?token=nope"],
    "account": ["/account"],
    "agents": ["/agents", "/agents?status=online&label=env:prod&ordering=-name&page=2"],
    "agents/<uuid:agent_id>": ["/agents/{agent}", "/agents/{offline_agent}"],
    "agents/<uuid:agent_id>/config": ["/agents/{agent}/config"],
    "agents/<uuid:agent_id>/labels": ["/agents/{agent}/labels"],
    "agents/<uuid:agent_id>/delete": ["/agents/{agent}/delete"],
    "live": ["/live", "/live?status=expired", "/live?agent_id={agent}&page=2"],
    "live/<uuid:session_id>": ["/live/{open_session}", "/live/{timed_out_session}", "/live/{idle_session}"],
    "live/<uuid:session_id>/stop": ["/live/{open_session}/stop"],
    "keys": ["/keys", "/keys?status=revoked&page=2"],
    "members": ["/members"],
    "audit": ["/audit", "/audit?action=auth.login&actor=someone@example.com"],
    "notifications": ["/notifications", "/notifications?channel={channel}&page=2"],
    "notifications/deliveries": ["/notifications/deliveries", "/notifications/deliveries?channel={channel}"],
    "notifications/<uuid:channel_id>": ["/notifications/{channel}"],
    "": ["/", "/?wait=first-agent"],
    "first-agent/key": ["/first-agent/key"],
    "metrics": [
        "/metrics",
        "/metrics?name=hits_total&range=6h&group_by=env&agent_id={agent}",
        "/metrics?name=took_seconds",
        "/metrics?name=hits_total&agg=p99&step=5",
    ],
    "metrics/panel": ["/metrics/panel?agent_id={agent}", "/metrics/panel?agent_id={offline_agent}"],
    "rules": ["/rules", "/rules?page=2"],
    "rules/new": ["/rules/new"],
    "rules/test": ["/rules/test"],
    "rules/<uuid:config_id>": ["/rules/{config}"],
    "rules/<uuid:config_id>/enabled": ["/rules/{config}/enabled"],
    "rules/<uuid:config_id>/delete": ["/rules/{config}/delete"],
}
# One document whoever asks, and a second to generate: walked once.
SAME_FOR_EVERYONE = ("api/v1/schema", "api/v1/docs")
# The admin's own routes (its model admins' are generated).
ADMIN_GETS = {
    "admin/": ["/admin/"],
    "admin/login/": ["/admin/login/"],
    "admin/logout/": ["/admin/logout/"],
    "admin/password_change/": ["/admin/password_change/"],
    "admin/password_change/done/": ["/admin/password_change/done/"],
    "admin/autocomplete/": ["/admin/autocomplete/"],
    "admin/jsi18n/": ["/admin/jsi18n/"],
    "admin/r/<path:content_type_id>/<path:object_id>/": ["/admin/r/{agent_type}/{agent}/"],
    "admin/(?P<url>.*)$": ["/admin/nope/"],
    "admin/accounts/user/<id>/password/": ["/admin/accounts/user/{member}/password/"],
}


def routes():
    """(route, callback) of every URL pattern."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.callback

    return list(walk(get_resolver().url_patterns))


def admin_gets(objects: dict) -> dict[str, list[str]]:
    """The GETs of each model admin's routes: its list (plain and searched), add form, and the
    change, history, delete and view pages of one object; the app indexes."""
    gets = dict(ADMIN_GETS)
    for route, callback in routes():
        model_admin = getattr(callback, "model_admin", None)
        if model_admin is not None:
            path = "/" + route.replace("<path:object_id>", str(objects[model_admin.model].pk))
            gets[route] = [path, f"{path}?q=x"] if route.endswith(f"/{model_admin.opts.model_name}/") else [path]
        elif route.startswith("admin/^(?P<app_label>"):
            gets[route] = [f"/admin/{app_label}/" for app_label in {model._meta.app_label for model in objects}]
    return gets


def database_rows() -> dict[str, list]:
    """Every row of every table (Django's own included: sessions, content types, admin log)."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in apps.get_models(include_auto_created=True)
    }


class World:
    """One of everything, with the sessions in every state a read must show without writing."""

    def __init__(self, org, admin_client, member_client, viewer_client, operator_client):
        self.clients = {
            "anonymous": APIClient(),
            "admin": admin_client,
            "member": member_client,
            "viewer": viewer_client,
        }
        self.key, raw = make_key(org, permissions=PERMISSIONS)
        self.clients["edge key"] = APIClient()
        self.clients["edge key"].credentials(HTTP_X_API_KEY=raw)
        self.operator = operator_client
        agent = AgentFactory(organization=org, name="store-01", labels={"env": "prod"}, online=True)
        offline = AgentFactory(organization=org, name="store-02")
        created = member_client.post(
            "/api/v1/metric-configs",
            {
                "name": "base",
                "metrics": [
                    RULE,
                    {
                        "name": "took_seconds",
                        "type": "histogram",
                        "pattern": "took=(\\d+)",
                        "value_capture": "$1",
                        "buckets": [1],
                    },
                ],
            },
            format="json",
        )
        assert created.status_code == 201, created.json()
        now = time.time()
        pushed = self.clients["edge key"].post(
            f"/api/v1/edge/agents/{agent.pk}/metrics",
            {
                "batch_id": "batch-1",
                "samples": [
                    {
                        "name": "hits_total",
                        "type": "counter",
                        "timestamp": now - 90,
                        "value": 3,
                        "labels": {"env": "prod"},
                    },
                    {
                        "name": "took_seconds",
                        "type": "histogram",
                        "timestamp": now - 90,
                        "histogram": {"count": 2, "sum": 3.0, "buckets": {"1": 1, "+Inf": 2}},
                    },
                ],
            },
            format="json",
        )
        assert pushed.status_code == 202, pushed.json()
        long_ago = timezone.now() - timedelta(hours=1)
        sessions = {
            "open_session": StreamSessionFactory(agent=agent, status=SessionStatus.ACTIVE, timeout_seconds=3600),
            # Over by its timeout, and by nobody watching, but stored as open: only a write ends them.
            "timed_out_session": StreamSessionFactory(
                agent=agent, status=SessionStatus.ACTIVE, timeout_seconds=60, started_at=long_ago
            ),
            "idle_session": StreamSessionFactory(
                agent=agent, timeout_seconds=3600, started_at=timezone.now() - timedelta(minutes=10)
            ),
            "stopped_session": StreamSessionFactory(
                agent=agent,
                status=SessionStatus.STOPPED,
                end_reason=EndReason.STOPPED,
                stopped_at=timezone.now() - timedelta(minutes=1),
            ),
        }
        member = member_client.user
        PasswordTokenFactory(user=member)
        AuditEventFactory(organization=org, action="test.event")
        Group.objects.create(name="operators")
        channel = NotificationChannelFactory(organization=org)
        # A delivery of each state, and its attempt, so that the channel's last delivery is read.
        NotificationDeliveryFactory(channel=channel)
        delivered = NotificationDeliveryFactory(
            channel=channel, status="delivered", attempts=1, delivered_at=timezone.now()
        )
        NotificationAttempt.objects.create(delivery=delivered, number=1, response_status=200)
        AgentAnnouncement.objects.create(agent=agent, status="online")
        KeyAnnouncement.objects.create(api_key=self.key)
        # One object of each model in the admin, for its change, history and delete pages.
        self.objects = {model: model.objects.order_by("pk").first() for model in admin.site._registry}
        assert all(self.objects.values()), self.objects
        self.ids = {
            "agent": str(agent.pk),
            "offline_agent": str(offline.pk),
            "config": created.json()["id"],
            "key": str(self.key.pk),
            "member": str(member.pk),
            "channel": str(channel.pk),
            "agent_type": str(ContentType.objects.get_for_model(Agent).pk),
            **{name: str(session.pk) for name, session in sessions.items()},
        }

    def fill(self, path: str) -> str:
        for name, value in self.ids.items():
            path = path.replace(f"{{{name}}}", value)
        return path


@pytest.fixture
def world(org, admin_client, member_client, viewer_client, operator_client, settings):
    # The walk sends hundreds of requests in a second; the limits themselves are tested elsewhere.
    settings.RATE_LIMITS = {group: "100000/m" for group in settings.RATE_LIMITS}
    world = World(org, admin_client, member_client, viewer_client, operator_client)
    # Each credential once before the walk (see the module's docstring).
    for client in world.clients.values():
        client.get("/api/v1/edge/sync-config", {"agent_id": world.ids["agent"]})
        client.get("/api/v1/auth/me")
    assert APIKey.objects.get(pk=world.key.pk).last_used_at is not None
    return world


def test_every_route_is_walked(world):
    walked = set(GETS) | set(PAGE_GETS) | set(admin_gets(world.objects))
    missing = {route for route, _callback in routes()} - walked
    assert not missing, f"add these routes to GETS: {sorted(missing)}"


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COPY", "CREATE", "DROP", "ALTER", "TRUNCATE")


def walk(client, paths, who) -> int:
    """GET each path: no statement that writes, no 500; then no row of any table changed. The 200s."""
    before = database_rows()
    answered = 0
    for path in paths:
        with CaptureQueriesContext(connection) as queries:
            r = client.get(path, HTTP_ACCEPT="*/*")
        assert r.status_code < 500, (who, path, r.status_code, r.content[:300])
        writes = [query["sql"][:200] for query in queries if query["sql"].lstrip().upper().startswith(WRITES)]
        assert not writes, f"GET {path} as {who} wrote: {writes}"
        answered += r.status_code == 200
    after = database_rows()
    assert [table for table in after if after[table] != before.get(table)] == [], who
    return answered


def test_no_get_of_the_api_writes_anything_whoever_asks(world):
    paths = [world.fill(path) for route, gets in GETS.items() for path in gets if route not in SAME_FOR_EVERYONE]
    once = [world.fill(path) for route in SAME_FOR_EVERYONE for path in GETS[route]]
    assert walk(world.clients["viewer"], once, "viewer") == len(once)
    answered = {who: walk(client, paths, who) for who, client in world.clients.items()}
    # The walk reached the reads themselves, not only their refusals.
    assert answered["viewer"] >= 30 and answered["edge key"] >= 5, answered


def test_no_get_of_the_admin_writes_anything(world):
    paths = [world.fill(path) for gets in admin_gets(world.objects).values() for path in gets]
    assert walk(world.operator, paths, "operator") >= 60
    walk(APIClient(), paths, "anonymous")


def test_no_page_get_writes_anything_whoever_asks(world):
    paths = [world.fill(path) for gets in PAGE_GETS.values() for path in gets]
    answered = {
        role: walk(browser_client(world.clients[role].user), paths, f"{role} browser")
        for role in ("admin", "member", "viewer")
    }
    walk(Client(HTTP_ACCEPT="text/html"), paths, "anonymous browser")
    assert answered["viewer"] >= 8, answered


def test_reads_show_over_sessions_as_over_without_writing_them_down(world):
    viewer = world.clients["viewer"]
    timed_out = viewer.get(world.fill("/api/v1/stream/sessions/{timed_out_session}")).json()
    idle = viewer.get(world.fill("/api/v1/stream/sessions/{idle_session}")).json()
    assert (timed_out["status"], timed_out["end_reason"]) == ("expired", "timeout")
    assert (idle["status"], idle["end_reason"]) == ("stopped", "idle")
    listed = viewer.get("/api/v1/stream/sessions", {"status": "expired"}).json()["items"]
    assert [item["id"] for item in listed] == [world.ids["timed_out_session"]]
    stored = StreamSession.objects.filter(pk__in=[world.ids["timed_out_session"], world.ids["idle_session"]])
    assert {str(pk): status for pk, status in stored.values_list("pk", "status")} == {
        world.ids["timed_out_session"]: SessionStatus.ACTIVE,
        world.ids["idle_session"]: SessionStatus.PENDING,
    }


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_a_new_users_first_reads_write_nothing_either(world, org, role):
    """A user's very first requests (no warm-up): only the login that made the session wrote."""
    client = client_for(UserFactory(organization=org, role=role))
    assert walk(client, [world.fill(path) for path in GETS["api/v1/^agents$"] + GETS["api/v1/auth/me"]], role)
