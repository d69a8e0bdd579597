"""Tenancy, walked over the whole URLconf: another organization's credentials (a JWT of each
role, edge keys with and without each permission) never reach this organization's objects.

Every API route must be listed in ROUTES: a new endpoint that is not covered fails the test.
"""

import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.urls import URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents.tests.factories import AgentFactory, NotificationChannelFactory
from apikeys.keys import PERMISSIONS
from apikeys.tests.factories import make_key
from conftest import client_for
from logfleet.asgi import application
from metrics import services as metric_services
from metrics.examples import nginx_example
from streaming.tests.factories import StreamSessionFactory

ANY = object()  # a route without the other organization's objects in it (own data or public)

# route (as the URLconf spells it) → {method: body}; "{agent}", "{key}", "{config}", "{session}",
# "{member}" in paths and bodies are the victim organization's objects.
ROUTES = {
    "api/v1/auth/register": ANY,
    "api/v1/auth/login": ANY,
    "api/v1/auth/refresh": ANY,
    "api/v1/auth/logout": ANY,
    "api/v1/auth/forgot-password": ANY,
    "api/v1/auth/reset-password": ANY,
    "api/v1/auth/change-password": ANY,
    "api/v1/auth/me": ANY,
    "api/v1/organization": ANY,
    "api/v1/schema": ANY,
    "api/v1/docs": ANY,
    "api/v1/docs/": ANY,
    "api/v1/edge/register": ANY,
    "api/v1/^organization/members$": ANY,
    "api/v1/^organization/members/(?P<pk>[^/.]+)$": {
        "/api/v1/organization/members/{member}": {"get": None, "patch": {"role": "viewer"}, "delete": None},
    },
    "api/v1/^audit-events$": ANY,
    "api/v1/^api-keys$": ANY,
    "api/v1/^api-keys/(?P<pk>[^/.]+)$": {"/api/v1/api-keys/{key}": {"get": None, "delete": None}},
    "api/v1/^api-keys/(?P<pk>[^/.]+)/rotate$": {"/api/v1/api-keys/{key}/rotate": {"post": {}}},
    "api/v1/^agents$": ANY,
    "api/v1/^agents/(?P<pk>[^/.]+)$": {
        "/api/v1/agents/{agent}": {"get": None, "patch": {"name": "stolen"}, "delete": None},
    },
    "api/v1/^agents/(?P<pk>[^/.]+)/config$": {
        "/api/v1/agents/{agent}/config": {"get": None, "put": {"version": 1, "config": {}}},
    },
    "api/v1/^metric-configs$": ANY,
    "api/v1/^metric-configs/test$": {
        "/api/v1/metric-configs/test": {"post": {"config_id": "{config}", "lines": ["x"]}}
    },
    "api/v1/^metric-configs/(?P<pk>[^/.]+)$": {
        "/api/v1/metric-configs/{config}": {"get": None, "patch": {"version": 1, "enabled": False}, "delete": None},
    },
    "api/v1/^notification-channels$": ANY,
    "api/v1/^notification-channels/(?P<pk>[^/.]+)$": {
        "/api/v1/notification-channels/{channel}": {"get": None, "patch": {"enabled": False}, "delete": None},
    },
    "api/v1/^notification-channels/(?P<pk>[^/.]+)/test$": {
        "/api/v1/notification-channels/{channel}/test": {"post": None}
    },
    "api/v1/^notification-channels/(?P<pk>[^/.]+)/deliveries$": {
        "/api/v1/notification-channels/{channel}/deliveries": {"get": None}
    },
    "api/v1/metrics/names": ANY,
    "api/v1/metrics/series": ANY,
    "api/v1/metrics/query": ANY,
    "api/v1/metrics/export": ANY,
    "api/v1/dashboard/summary": ANY,
    "api/v1/stream/start": {"/api/v1/stream/start": {"post": {"agent_id": "{agent}"}}},
    "api/v1/stream/stop": {"/api/v1/stream/stop": {"post": {"session_id": "{session}"}}},
    "api/v1/stream/sessions": ANY,
    "api/v1/stream/sessions/<str:pk>": {"/api/v1/stream/sessions/{session}": {"get": None}},
}
EDGE_ROUTES = {
    "api/v1/edge/heartbeat": ("/api/v1/edge/heartbeat", "post", {"agent_id": "{agent}", "status": "online"}),
    "api/v1/edge/agents/<uuid:agent_id>/heartbeat": (
        "/api/v1/edge/agents/{agent}/heartbeat",
        "post",
        {"status": "online"},
    ),
    "api/v1/edge/sync-config": ("/api/v1/edge/sync-config?agent_id={agent}", "get", None),
    "api/v1/edge/agents/<uuid:agent_id>/metric-config": ("/api/v1/edge/agents/{agent}/metric-config", "get", None),
    "api/v1/edge/agents/<uuid:agent_id>/metrics": ("/api/v1/edge/agents/{agent}/metrics", "post", {"samples": []}),
    "api/v1/edge/agents/<uuid:agent_id>/stream": (
        "/api/v1/edge/agents/{agent}/stream",
        "post",
        {"session_id": "{session}", "logs": []},
    ),
}


def api_routes():
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    return [route for route in walk(get_resolver().url_patterns) if route.startswith("api/v1/")]


def test_every_api_route_is_covered_by_the_walk():
    missing = set(api_routes()) - set(ROUTES) - set(EDGE_ROUTES)
    assert not missing, f"add these routes to the isolation walk: {sorted(missing)}"


@pytest.fixture
def victim(org, admin_user):
    agent = AgentFactory(organization=org, online=True)
    config = metric_services.metric_config_create(organization=org, actor=admin_user, **nginx_example())
    session = StreamSessionFactory(agent=agent, timeout_seconds=600)
    return {
        "agent": str(agent.pk),
        "key": str(make_key(org)[0].pk),
        "config": str(config.pk),
        "session": str(session.pk),
        "member": str(UserFactory(organization=org, role=Role.MEMBER).pk),
        "channel": str(NotificationChannelFactory(organization=org).pk),
    }


def fill(value, ids):
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], value)
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_another_organizations_users_get_404_for_every_object_route(victim, other_org, role, settings):
    # The walk sends hundreds of requests in a second; the limits themselves are tested elsewhere.
    settings.RATE_LIMITS = {group: "100000/m" for group in settings.RATE_LIMITS}
    client = client_for(UserFactory(organization=other_org, role=role))
    checked = 0
    for spec in ROUTES.values():
        if spec is ANY:
            continue
        for path, methods in spec.items():
            for method, body in methods.items():
                r = getattr(client, method)(fill(path, victim), fill(body, victim), format="json")
                if role == Role.ADMIN or r.status_code != 403:  # a role refusal reveals nothing either
                    assert r.status_code == 404, (role, method, path, r.status_code, r.content[:200])
                checked += 1
    assert checked >= 15


@pytest.mark.django_db
@pytest.mark.parametrize("permissions", [list(PERMISSIONS)] + [[p] for p in PERMISSIONS])
def test_another_organizations_keys_never_reach_its_agents(victim, other_org, permissions, settings):
    # The walk sends hundreds of requests in a second; the limits themselves are tested elsewhere.
    settings.RATE_LIMITS = {group: "100000/m" for group in settings.RATE_LIMITS}
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(other_org, permissions=permissions)[1])
    for path, method, body in EDGE_ROUTES.values():
        r = getattr(client, method)(fill(path, victim), fill(body, victim), format="json")
        assert r.status_code in (403, 404), (permissions, method, path, r.status_code, r.content[:200])
    exported = client.get("/api/v1/metrics/export")
    assert exported.status_code in (200, 403) and victim["agent"].encode() not in exported.content


@pytest.mark.django_db
def test_lists_of_another_organization_hold_none_of_its_objects(victim, other_admin_client, settings):
    # The walk sends hundreds of requests in a second; the limits themselves are tested elsewhere.
    settings.RATE_LIMITS = {group: "100000/m" for group in settings.RATE_LIMITS}
    for path in (
        "/api/v1/agents",
        "/api/v1/api-keys",
        "/api/v1/metric-configs",
        "/api/v1/stream/sessions",
        "/api/v1/organization/members",
        "/api/v1/audit-events",
        "/api/v1/metrics/series",
        "/api/v1/notification-channels",
    ):
        body = other_admin_client.get(path).content.decode()
        assert not any(object_id in body for object_id in victim.values()), path


@pytest.mark.django_db(transaction=True)
def test_websockets_of_another_organization_are_refused(org, other_org):
    agent = AgentFactory(organization=org)
    session = StreamSessionFactory(agent=agent, timeout_seconds=600)
    token = client_for(UserFactory(organization=other_org)).tokens.token
    key = make_key(other_org)[1]

    async def body():
        for communicator in (
            WebsocketCommunicator(application, f"/api/v1/stream/ws/{session.pk}?token={token}"),
            WebsocketCommunicator(
                application, f"/api/v1/edge/agents/{agent.pk}/ws", headers=[(b"x-api-key", key.encode())]
            ),
        ):
            await communicator.connect()
            message = await communicator.receive_output(timeout=3)
            if message["type"] == "websocket.accept":
                message = await communicator.receive_output(timeout=3)
            # The reason is the one an unknown id gets: it says nothing of the other organization.
            assert message["type"] == "websocket.close" and message["code"] == 4404, message
            assert message["reason"] in ("No such stream session", "No such agent in the organization of this API key")
            await communicator.disconnect()

    async_to_sync(body)()
