import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEvent, Role
from accounts.services import audit_record
from logfleet.testing import ResourceBattery, assert_error

pytestmark = pytest.mark.django_db

AUDIT = "/api/v1/audit-events"


def test_audit_events_resource_battery(org, other_org, role_clients):
    ResourceBattery(
        list_url=AUDIT,
        make_in=lambda organization: audit_record(organization=organization, action="test.event").pk,
        read_roles=(Role.ADMIN,),
    ).run(org=org, other_org=other_org, role_clients=role_clients)


def test_audit_event_shape_and_newest_first(admin_client, admin_user, org):
    APIClient().post("/api/v1/auth/login", {"email": admin_user.email, "password": "wrong"}, format="json")
    APIClient().post(
        "/api/v1/auth/login", {"email": admin_user.email, "password": "Sturdy-test-passw0rd"}, format="json"
    )
    items = admin_client.get(AUDIT).json()["items"]
    assert [item["action"] for item in items[:2]] == ["auth.login", "auth.login_failed"]
    event = items[0]
    assert set(event) == {
        "id",
        "action",
        "actor_type",
        "actor",
        "target_type",
        "target_id",
        "metadata",
        "ip_address",
        "created_at",
    }
    assert event["actor_type"] == "user"
    assert event["actor"] == {"id": str(admin_user.pk), "email": admin_user.email}
    assert event["ip_address"] == "127.0.0.1"
    assert event["created_at"].endswith("Z")


def test_audit_filters(admin_client, admin_user, member_user, org):
    audit_record(organization=org, action="x.one", actor=admin_user)
    audit_record(organization=org, action="x.two", actor=member_user)
    assert [e["action"] for e in admin_client.get(AUDIT, {"action": "x.one"}).json()["items"]] == ["x.one"]
    by_member = admin_client.get(AUDIT, {"actor": str(member_user.pk)}).json()["items"]
    assert [e["action"] for e in by_member] == ["x.two"]
    assert admin_client.get(AUDIT, {"since": "2999-01-01T00:00:00Z"}).json()["total"] == 0
    assert admin_client.get(AUDIT, {"since": "2000-01-01T00:00:00+02:00"}).json()["total"] >= 2
    assert "since" in assert_error(admin_client.get(AUDIT, {"since": "2024-01-15T10:30:00"}), 400)["details"]
    assert "since" in assert_error(admin_client.get(AUDIT, {"since": "yesterday"}), 400)["details"]
    assert "actor" in assert_error(admin_client.get(AUDIT, {"actor": "nope"}), 400)["details"]


def test_a_system_event_has_no_actor(admin_client, org):
    audit_record(organization=org, action="system.thing")
    event = admin_client.get(AUDIT, {"action": "system.thing"}).json()["items"][0]
    assert event["actor"] is None and event["actor_type"] == "system"
    assert AuditEvent.objects.filter(action="system.thing").count() == 1
