import re

import pytest
from django.core import mail
from rest_framework.test import APIClient

from accounts.models import AuditEvent, Role, User, UserStatus
from accounts.tests.factories import AuditEventFactory, UserFactory
from logfleet.testing import ResourceBattery, assert_error

pytestmark = pytest.mark.django_db

MEMBERS = "/api/v1/organization/members"
ORGANIZATION = "/api/v1/organization"


def member_url(member_id) -> str:
    return f"{MEMBERS}/{member_id}"


def test_members_resource_battery(org, other_org, role_clients):
    ResourceBattery(
        list_url=MEMBERS,
        detail_url=member_url,
        make_in=lambda organization: UserFactory(organization=organization, role=Role.VIEWER).pk,
        writes=[("post", MEMBERS, {"email": "x@example.com", "name": "X", "role": "viewer"})],
        forbidden_roles=(Role.MEMBER, Role.VIEWER),
    ).run(org=org, other_org=other_org, role_clients=role_clients)


def test_members_are_listed_oldest_first_with_their_fields(admin_client, admin_user, member_user):
    items = admin_client.get(MEMBERS).json()["items"]
    assert [item["id"] for item in items] == [str(admin_user.pk), str(member_user.pk)]
    assert set(items[0]) == {"id", "email", "name", "role", "status", "created_at", "last_login_at"}
    assert items[0]["created_at"].endswith("Z")


def test_invited_member_sets_a_password_through_the_emailed_link(admin_client, org):
    r = admin_client.post(MEMBERS, {"email": "New@Example.com", "name": "New", "role": "member"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["status"] == "invited" and r.json()["email"] == "new@example.com"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]
    token = re.search(r"reset-password\?token=(\S+)", mail.outbox[0].body).group(1)

    before = APIClient().post(
        "/api/v1/auth/login", {"email": "new@example.com", "password": "Fresh-passw0rd-1"}, format="json"
    )
    assert_error(before, 401, "authentication_failed")
    r = APIClient().post(
        "/api/v1/auth/reset-password", {"token": token, "new_password": "Fresh-passw0rd-1"}, format="json"
    )
    assert r.status_code == 200, r.json()
    login = APIClient().post(
        "/api/v1/auth/login", {"email": "new@example.com", "password": "Fresh-passw0rd-1"}, format="json"
    )
    assert login.status_code == 200, login.json()
    assert login.json()["user"]["role"] == "member"
    assert User.objects.get(email="new@example.com").status == UserStatus.ACTIVE
    assert AuditEvent.objects.filter(action="member.invited", organization=org).count() == 1


def test_invite_with_a_used_email_is_a_conflict(admin_client, member_user):
    r = admin_client.post(MEMBERS, {"email": member_user.email.upper(), "name": "Dup", "role": "viewer"}, format="json")
    assert_error(r, 409, "conflict")
    assert mail.outbox == []


def test_invite_rejects_an_unknown_role(admin_client):
    r = admin_client.post(MEMBERS, {"email": "a@example.com", "name": "A", "role": "owner"}, format="json")
    assert "role" in assert_error(r, 400, "validation_error")["details"]


def test_a_role_change_takes_effect_on_the_next_request(admin_client, member_user, member_client):
    invite = {"email": "later@example.com", "name": "Later", "role": "viewer"}
    assert_error(member_client.post(MEMBERS, invite, format="json"), 403, "permission_denied")
    r = admin_client.patch(member_url(member_user.pk), {"role": "admin"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["role"] == "admin"
    assert member_client.post(MEMBERS, invite, format="json").status_code == 201
    event = AuditEvent.objects.get(action="member.updated")
    assert event.metadata["changes"] == {"role": ["member", "admin"]}


def test_a_deactivated_member_is_locked_out_at_once(admin_client, member_user, member_client):
    assert member_client.get("/api/v1/auth/me").status_code == 200
    r = admin_client.patch(member_url(member_user.pk), {"status": "deactivated"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "deactivated"
    assert_error(member_client.get("/api/v1/auth/me"), 401, "not_authenticated")


def test_the_last_active_admin_cannot_be_demoted_deactivated_or_deleted(admin_client, admin_user):
    url = member_url(admin_user.pk)
    assert_error(admin_client.patch(url, {"role": "member"}, format="json"), 409, "conflict")
    assert_error(admin_client.patch(url, {"status": "deactivated"}, format="json"), 409, "conflict")
    assert_error(admin_client.delete(url), 409, "conflict")
    admin_user.refresh_from_db()
    assert (admin_user.role, admin_user.status) == (Role.ADMIN, UserStatus.ACTIVE)


def test_an_admin_may_step_down_when_another_admin_remains(admin_client, admin_user, org):
    UserFactory(organization=org, role=Role.ADMIN)
    r = admin_client.patch(member_url(admin_user.pk), {"role": "viewer"}, format="json")
    assert r.status_code == 200, r.json()
    assert_error(admin_client.get("/api/v1/audit-events"), 403, "permission_denied")


def test_an_invited_member_cannot_be_activated_by_an_admin(admin_client, org):
    invited = UserFactory(organization=org, status=UserStatus.INVITED)
    assert_error(admin_client.patch(member_url(invited.pk), {"status": "active"}, format="json"), 409)
    r = admin_client.patch(member_url(invited.pk), {"status": "invited"}, format="json")
    assert "status" in assert_error(r, 400)["details"]


def test_deleting_a_member_keeps_their_email_in_the_audit_log(admin_client, member_user, member_client, org):
    member_client.patch("/api/v1/auth/me", {"name": "Soon gone"}, format="json")
    AuditEventFactory(
        organization=org,
        action="test.before",
        actor_type="user",
        actor_id=member_user.pk,
        actor_email=member_user.email,
    )
    assert admin_client.delete(member_url(member_user.pk)).status_code == 204
    assert not User.objects.filter(pk=member_user.pk).exists()
    assert_error(member_client.get("/api/v1/auth/me"), 401)
    events = admin_client.get("/api/v1/audit-events", {"actor": str(member_user.pk)}).json()["items"]
    assert events and events[0]["actor"] == {"id": str(member_user.pk), "email": member_user.email}
    deleted = admin_client.get("/api/v1/audit-events", {"action": "member.deleted"}).json()["items"]
    assert deleted[0]["metadata"]["email"] == member_user.email


def test_get_one_member(viewer_client, member_user):
    r = viewer_client.get(member_url(member_user.pk))
    assert r.status_code == 200, r.json()
    assert r.json()["email"] == member_user.email


def test_every_role_reads_the_organization_and_only_admins_rename_it(role_clients, org):
    for role, client in role_clients.items():
        r = client.get(ORGANIZATION)
        assert r.status_code == 200, (role, r.json())
        assert r.json() == {"id": str(org.pk), "name": org.name, "slug": org.slug, "created_at": r.json()["created_at"]}
    for role in (Role.MEMBER, Role.VIEWER):
        assert_error(role_clients[role].patch(ORGANIZATION, {"name": "Hijack"}, format="json"), 403)
    r = role_clients[Role.ADMIN].patch(ORGANIZATION, {"name": "Renamed", "slug": "evil"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["name"] == "Renamed" and r.json()["slug"] == org.slug
    assert (
        "name"
        in assert_error(role_clients[Role.ADMIN].patch(ORGANIZATION, {"name": ""}, format="json"), 400)["details"]
    )


def test_users_never_see_another_organizations_members(admin_client, other_admin_client, admin_user):
    others = other_admin_client.get(MEMBERS).json()["items"]
    assert str(admin_user.pk) not in {item["id"] for item in others}
    assert_error(other_admin_client.patch(member_url(admin_user.pk), {"role": "viewer"}, format="json"), 404)
    assert_error(other_admin_client.delete(member_url(admin_user.pk)), 404)
