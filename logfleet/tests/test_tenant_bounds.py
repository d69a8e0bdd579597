"""What one organization may hold is bounded (API.md: one tenant never slows or blocks another)."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from accounts.tests.factories import AuditEventFactory
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error
from metrics.examples import nginx_example
from streaming.models import StreamSession
from streaming.tests.factories import StreamSessionFactory

pytestmark = pytest.mark.django_db


def test_agents_per_organization_are_bounded(org, member_client, other_org, settings):
    settings.MAX_AGENTS_PER_ORG = 2  # the bound, reached with two agents instead of 10 000
    assert member_client.post("/api/v1/agents", {"name": "a"}, format="json").status_code == 201
    edge = APIClient()
    edge.credentials(HTTP_X_API_KEY=make_key(org, permissions=["edge:register"])[1])
    assert edge.post("/api/v1/edge/register", {"name": "b"}, format="json").status_code == 201
    body = assert_error(member_client.post("/api/v1/agents", {"name": "c"}, format="json"), 409, "conflict")
    assert body["details"] == {"limit": 2}
    assert_error(edge.post("/api/v1/edge/register", {"name": "c"}, format="json"), 409, "conflict")
    assert edge.post("/api/v1/edge/register", {"name": "b"}, format="json").status_code == 200  # existing: fine
    AgentFactory(organization=other_org)  # another organization has a bound of its own
    AgentFactory(organization=other_org)


def test_metric_configs_per_organization_are_bounded(member_client, settings):
    settings.MAX_METRIC_CONFIGS_PER_ORG = 1  # the bound, reached with one config
    example = nginx_example()
    assert member_client.post("/api/v1/metric-configs", example, format="json").status_code == 201
    r = member_client.post("/api/v1/metric-configs", {**example, "name": "second"}, format="json")
    assert_error(r, 409, "conflict")


def test_active_api_keys_per_organization_are_bounded(admin_client, settings):
    settings.MAX_API_KEYS_PER_ORG = 1  # the bound, reached with one key
    body = {"name": "k", "permissions": ["edge:heartbeat"]}
    first = admin_client.post("/api/v1/api-keys", body, format="json")
    assert first.status_code == 201
    assert_error(admin_client.post("/api/v1/api-keys", body, format="json"), 409, "conflict")
    assert admin_client.delete(f"/api/v1/api-keys/{first.json()['api_key']['id']}").status_code == 204
    assert admin_client.post("/api/v1/api-keys", body, format="json").status_code == 201  # revoked: not counted


def test_members_per_organization_are_bounded(admin_client, settings):
    settings.MAX_MEMBERS_PER_ORG = 2  # the admin and one more
    invite = {"email": "one@example.com", "name": "One", "role": "viewer"}
    assert admin_client.post("/api/v1/organization/members", invite, format="json").status_code == 201
    r = admin_client.post("/api/v1/organization/members", {**invite, "email": "two@example.com"}, format="json")
    assert_error(r, 409, "conflict")


def test_metric_names_per_agent_are_bounded(org, settings):
    settings.METRIC_MAX_NAMES_PER_AGENT = 2  # the bound, reached with three names
    agent = AgentFactory(organization=org)
    edge = APIClient()
    edge.credentials(HTTP_X_API_KEY=make_key(org, permissions=["edge:metrics"])[1])
    now = timezone.now().isoformat()
    samples = [{"name": n, "type": "gauge", "labels": {}, "timestamp": now, "value": 1} for n in ("a", "b", "c", "a")]
    r = edge.post(f"/api/v1/edge/agents/{agent.pk}/metrics", {"samples": samples}, format="json")
    assert r.status_code == 202, r.json()
    assert r.json()["accepted"] == 3
    assert [e["index"] for e in r.json()["errors"]] == [2] and "at most 2" in r.json()["errors"][0]["message"]


def test_prune_history_deletes_old_audit_events_and_stream_sessions(org):
    agent = AgentFactory(organization=org)
    long_ago = timezone.now() - timedelta(days=400)
    old = AuditEventFactory(organization=org, action="agent.updated", created_at=long_ago)
    StreamSessionFactory(agent=agent, timeout_seconds=60, started_at=long_ago)
    recent = StreamSessionFactory(agent=agent, timeout_seconds=60)
    kept = set(AuditEvent.objects.exclude(pk=old.pk).values_list("pk", flat=True))
    out = io.StringIO()
    call_command("prune_history", stdout=out)
    assert "deleted 1 audit events" in out.getvalue() and "deleted 1 stream sessions" in out.getvalue()
    assert set(AuditEvent.objects.values_list("pk", flat=True)) == kept
    assert list(StreamSession.objects.values_list("pk", flat=True)) == [recent.pk]
