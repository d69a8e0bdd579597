"""Read-only and privileged fields in a body are ignored, on every writable resource."""

import pytest

from agents.tests.factories import AgentFactory
from metrics.examples import nginx_example

pytestmark = pytest.mark.django_db

FOREIGN_ID = "00000000-0000-4000-8000-000000000000"
PRIVILEGED = {
    "id": FOREIGN_ID,
    "organization": FOREIGN_ID,
    "organization_id": FOREIGN_ID,
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "created_by": FOREIGN_ID,
}


def assert_untouched(body: dict, org):
    assert body["id"] != FOREIGN_ID
    assert body.get("organization_id", str(org.pk)) == str(org.pk)
    assert not body.get("created_at", "").startswith("2000")
    assert body.get("created_by") != FOREIGN_ID


def test_metric_configs_ignore_version_hash_and_ids_on_create(member_client, org):
    r = member_client.post(
        "/api/v1/metric-configs", {**nginx_example(), **PRIVILEGED, "version": 99, "hash": "x"}, format="json"
    )
    assert r.status_code == 201, r.json()
    assert_untouched(r.json(), org)
    assert r.json()["version"] == 1 and r.json()["hash"] != "x"


def test_agents_ignore_status_and_reported_fields(member_client, org):
    r = member_client.post(
        "/api/v1/agents",
        {
            "name": "a",
            **PRIVILEGED,
            "status": "online",
            "config_hash": "x",
            "last_heartbeat_at": "2030-01-01T00:00:00Z",
            "config_version": 7,
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    assert_untouched(r.json(), org)
    body = r.json()
    assert (body["status"], body["last_heartbeat_at"], body["config_version"]) == ("offline", None, 1)


def test_stream_sessions_ignore_status_counters_and_creator(member_client, member_user, org):
    agent = AgentFactory(organization=org, online=True)
    r = member_client.post(
        "/api/v1/stream/start",
        {
            "agent_id": str(agent.pk),
            **PRIVILEGED,
            "status": "active",
            "lines_sent": 50,
            "expires_at": "2099-01-01T00:00:00Z",
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    session = r.json()["session"]
    assert session["status"] == "pending" and session["lines_sent"] == 0
    assert session["created_by"] == str(member_user.pk) and not session["expires_at"].startswith("2099")


def test_invited_members_get_the_invited_status_whatever_the_body_says(admin_client, org):
    r = admin_client.post(
        "/api/v1/organization/members",
        {"email": "n@example.com", "name": "N", "role": "member", **PRIVILEGED, "status": "active", "is_staff": True},
        format="json",
    )
    assert r.status_code == 201, r.json()
    assert_untouched(r.json(), org)
    assert r.json()["status"] == "invited"
    from accounts.models import User

    assert User.objects.get(email="n@example.com").is_staff is False


def test_api_keys_ignore_status_prefix_and_replacement(admin_client, org):
    r = admin_client.post(
        "/api/v1/api-keys",
        {
            "name": "k",
            "permissions": ["edge:register"],
            **PRIVILEGED,
            "status": "revoked",
            "key_prefix": "lf_prod_AAAAAAAA",
            "replaces": FOREIGN_ID,
            "revoked_at": "2000-01-01T00:00:00Z",
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    key = r.json()["api_key"]
    assert_untouched(key, org)
    assert key["status"] == "active" and key["replaces"] is None and key["revoked_at"] is None


def test_notification_channels_ignore_ids_secrets_and_delivery_state(admin_client, org):
    r = admin_client.post(
        "/api/v1/notification-channels",
        {
            "name": "ops",
            "kind": "webhook",
            "url": "https://93.184.216.34/hook",  # a public address literal: no DNS
            "events": ["agent.offline"],
            **PRIVILEGED,
            "secret": "whsec_chosen-by-the-client",
            "secret_encrypted": "x",
            "last_delivery": {"status": "delivered", "at": "2000-01-01T00:00:00Z"},
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    assert_untouched(r.json(), org)
    assert r.json()["secret"] != "whsec_chosen-by-the-client" and r.json()["last_delivery"] is None
