from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent, Role
from agents.tests.factories import AgentFactory
from apikeys import keys
from apikeys.models import APIKey
from apikeys.tests.factories import make_key
from logfleet.testing import ResourceBattery, assert_error

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/api-keys"
EDGE_PERMISSIONS = ["edge:register", "edge:heartbeat"]


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def register(raw: str, name: str = "store-01"):
    return key_client(raw).post("/api/v1/edge/register", {"name": name}, format="json")


def test_api_keys_resource_battery(org, other_org, role_clients):
    ResourceBattery(
        list_url=KEYS,
        detail_url=lambda key_id: f"{KEYS}/{key_id}",
        make_in=lambda organization: make_key(organization)[0].pk,
        writes=[("post", KEYS, {"name": "k", "permissions": ["edge:register"]})],
        forbidden_roles=(Role.MEMBER, Role.VIEWER),
        read_roles=(Role.ADMIN,),
    ).run(org=org, other_org=other_org, role_clients=role_clients)


def test_create_shows_the_raw_key_once_and_stores_only_a_hash(admin_client, admin_user, org):
    r = admin_client.post(KEYS, {"name": "fleet", "permissions": EDGE_PERMISSIONS}, format="json")
    assert r.status_code == 201, r.json()
    raw, key = r.json()["raw_key"], r.json()["api_key"]
    assert keys.KEY_RE.match(raw) and raw.startswith("lf_prod_")
    assert key["key_prefix"] == raw[:16] and len(key["key_prefix"]) == len("lf_prod_") + 8
    assert key["status"] == "active" and key["permissions"] == sorted(EDGE_PERMISSIONS)
    assert key["organization_id"] == str(org.pk) and key["created_by"] == str(admin_user.pk)
    assert key["replaces"] is None and key["expires_at"] is None
    stored = APIKey.objects.get(pk=key["id"])
    assert raw not in (stored.key_hash, stored.key_prefix) and len(stored.key_hash) == 64
    for body in (admin_client.get(f"{KEYS}/{key['id']}").json(), admin_client.get(KEYS).json()["items"][0]):
        assert "raw_key" not in body and raw not in str(body) and "key_hash" not in body
    assert register(raw).status_code == 201
    assert AuditEvent.objects.filter(action="api_key.created", target_id=key["id"]).exists()


def test_the_key_environment_follows_the_setting(admin_client, settings):
    settings.API_KEY_ENV = "dev"
    raw = admin_client.post(KEYS, {"name": "dev", "permissions": ["edge:register"]}, format="json").json()["raw_key"]
    assert raw.startswith("lf_dev_") and register(raw).status_code == 201


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "k", "permissions": []}, "permissions"),
        ({"name": "k", "permissions": ["edge:everything"]}, "permissions"),
        ({"name": "", "permissions": ["edge:register"]}, "name"),
        ({"name": "k", "permissions": ["edge:register"], "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "k", "permissions": ["edge:register"], "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
        ({"name": "k"}, "permissions"),
    ],
)
def test_create_rejects_bad_input(admin_client, body, field):
    details = assert_error(admin_client.post(KEYS, body, format="json"), 400, "validation_error")["details"]
    assert any(key.split(".")[0] == field for key in details), details
    assert APIKey.objects.count() == 0


def test_client_supplied_read_only_fields_are_ignored(admin_client, other_org):
    r = admin_client.post(
        KEYS,
        {
            "name": "k",
            "permissions": ["edge:register"],
            "key_prefix": "lf_prod_AAAAAAAA",
            "organization_id": str(other_org.pk),
            "status": "revoked",
            "id": "00000000-0000-4000-8000-000000000000",
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    key = r.json()["api_key"]
    assert key["key_prefix"] != "lf_prod_AAAAAAAA" and key["organization_id"] != str(other_org.pk)
    assert key["status"] == "active" and key["id"] != "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "raw",
    ["", "garbage", "lf_prod_", "lf_test_abcdefghijklmnopqrstuvwxyz123456", "Bearer lf_prod_x"],
)
def test_malformed_keys_are_401(db, raw):
    assert_error(register(raw), 401, "not_authenticated")


def test_a_made_up_key_with_a_bad_checksum_is_refused_without_a_query(org, django_assert_num_queries):
    raw = make_key(org)[1]
    tampered = raw[:-7] + ("A" if raw[-7] != "A" else "B") + raw[-6:]
    with django_assert_num_queries(0):
        assert_error(register(tampered), 401, "not_authenticated")


def test_an_unknown_key_with_a_valid_checksum_is_401(db):
    assert_error(register(keys.generate()), 401, "not_authenticated")


def test_a_key_without_the_permission_is_403(org):
    raw = make_key(org, permissions=["edge:heartbeat"])[1]
    assert_error(register(raw), 403, "permission_denied")


def test_a_revoked_key_fails_on_the_next_request_and_revoking_again_is_harmless(admin_client, org):
    key, raw = make_key(org)
    assert register(raw).status_code == 201  # the key's record is now cached
    assert admin_client.delete(f"{KEYS}/{key.pk}").status_code == 204
    assert_error(register(raw), 401, "not_authenticated")
    assert admin_client.delete(f"{KEYS}/{key.pk}").status_code == 204
    body = admin_client.get(f"{KEYS}/{key.pk}").json()
    assert body["status"] == "revoked" and body["revoked_at"].endswith("Z")
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=str(key.pk)).count() == 1


def test_a_key_stops_working_when_it_expires(org, clock):
    _key, raw = make_key(org, expires_at=timezone.now() + timedelta(hours=1))
    assert register(raw).status_code == 201  # its record, with the expiry time, is now cached
    clock.advance(3601)
    assert_error(register(raw), 401, "not_authenticated")


def test_rotation_keeps_the_old_key_through_the_grace_period(admin_client, org, clock):
    old, old_raw = make_key(org, name="fleet")
    r = admin_client.post(f"{KEYS}/{old.pk}/rotate", {"grace_seconds": 3600}, format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["api_key"]["name"] == "fleet" and body["api_key"]["permissions"] == old.permissions
    assert body["api_key"]["replaces"] == str(old.pk)
    assert body["previous"]["id"] == str(old.pk)
    assert register(old_raw).status_code == 201
    assert register(body["raw_key"]).status_code == 200
    clock.advance(3500)
    assert register(old_raw).status_code == 200
    # When the grace period is over, the old key fails and the new one goes on.
    clock.advance(101)
    assert_error(register(old_raw), 401)
    assert register(body["raw_key"]).status_code == 200
    assert admin_client.get(f"{KEYS}/{old.pk}").json()["status"] == "expired"
    assert AuditEvent.objects.filter(action="api_key.rotated").count() == 1


def test_rotation_with_no_grace_stops_the_old_key_at_once(admin_client, org):
    old, old_raw = make_key(org)
    assert register(old_raw).status_code == 201
    r = admin_client.post(f"{KEYS}/{old.pk}/rotate", {"grace_seconds": 0}, format="json")
    assert r.status_code == 201, r.json()
    assert_error(register(old_raw), 401)
    assert register(r.json()["raw_key"]).status_code == 200


def test_rotation_defaults_to_a_day_of_grace(admin_client, org):
    old, _ = make_key(org)
    r = admin_client.post(f"{KEYS}/{old.pk}/rotate", {}, format="json")
    assert r.status_code == 201, r.json()
    old.refresh_from_db()
    assert timedelta(hours=23) < old.expires_at - timezone.now() <= timedelta(days=1)


@pytest.mark.parametrize("grace", [-1, 604801, "soon"])
def test_rotation_rejects_a_bad_grace_period(admin_client, org, grace):
    old, _ = make_key(org)
    r = admin_client.post(f"{KEYS}/{old.pk}/rotate", {"grace_seconds": grace}, format="json")
    assert "grace_seconds" in assert_error(r, 400)["details"]


def test_rotating_a_revoked_or_expired_key_is_a_conflict(admin_client, org):
    revoked, _ = make_key(org)
    admin_client.delete(f"{KEYS}/{revoked.pk}")
    assert_error(admin_client.post(f"{KEYS}/{revoked.pk}/rotate", {}, format="json"), 409, "conflict")
    expired, _ = make_key(org, expires_at=timezone.now() + timedelta(hours=1))
    APIKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(admin_client.post(f"{KEYS}/{expired.pk}/rotate", {}, format="json"), 409, "conflict")


def test_list_filters_by_status(admin_client, org):
    active, _ = make_key(org, name="active")
    revoked, _ = make_key(org, name="revoked")
    admin_client.delete(f"{KEYS}/{revoked.pk}")
    expired, _ = make_key(org, name="expired", expires_at=timezone.now() + timedelta(hours=1))
    APIKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for status, key in (("active", active), ("revoked", revoked), ("expired", expired)):
        items = admin_client.get(KEYS, {"status": status}).json()["items"]
        assert [item["id"] for item in items] == [str(key.pk)], status
    assert [i["name"] for i in admin_client.get(KEYS).json()["items"]] == ["expired", "revoked", "active"]
    assert_error(admin_client.get(KEYS, {"status": "bar"}), 400, "validation_error")


def test_last_used_is_written_at_most_once_a_minute(org, django_assert_num_queries):
    key, raw = make_key(org, permissions=["edge:heartbeat"])
    agent = AgentFactory(organization=org)
    client = key_client(raw)
    url = f"/api/v1/edge/agents/{agent.pk}/heartbeat"
    assert client.post(url, {"status": "online"}, format="json").status_code == 200
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    # Warm: last_used_at is not due; the heartbeat UPDATE, and without Redis the key's record
    # (read from the database every time, so that `manage.py revoke_api_key` bites at once).
    with django_assert_num_queries(1 if settings.REDIS_URL else 2):
        assert client.post(url, {"status": "online"}, format="json").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at == first


def test_another_organizations_key_cannot_be_revoked_or_rotated(admin_client, other_org):
    foreign, raw = make_key(other_org)
    assert_error(admin_client.delete(f"{KEYS}/{foreign.pk}"), 404)
    assert_error(admin_client.post(f"{KEYS}/{foreign.pk}/rotate", {}, format="json"), 404)
    assert register(raw).status_code == 201


def test_rotation_keeps_the_keys_expiry(admin_client, org):
    expires = timezone.now() + timedelta(days=30)
    old, _ = make_key(org, expires_at=expires)
    r = admin_client.post(f"{KEYS}/{old.pk}/rotate", {"grace_seconds": 60}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["api_key"]["expires_at"] == expires.isoformat().replace("+00:00", "Z")


def test_secret_key_can_rotate_while_api_key_pepper_keeps_the_keys(org, settings):
    _key, raw = make_key(org, permissions=["edge:register"])
    old_secret = settings.SECRET_KEY
    # An operator rotates SECRET_KEY and keeps the old one as the pepper (README, Configuration).
    settings.SECRET_KEY, settings.API_KEY_PEPPER = "a-brand-new-secret-" * 3, old_secret
    assert key_client(raw).post("/api/v1/edge/register", {"name": "a"}, format="json").status_code == 201
    settings.API_KEY_PEPPER = settings.SECRET_KEY  # without it, every key is refused
    assert_error(key_client(raw).post("/api/v1/edge/register", {"name": "b"}, format="json"), 401)


def test_a_key_deleted_outside_the_api_is_refused_at_once(org):
    key, raw = make_key(org, permissions=["edge:register"])
    assert key_client(raw).post("/api/v1/edge/register", {"name": "a"}, format="json").status_code == 201
    key.delete()  # as the Django admin or the deletion of its organization does
    assert_error(key_client(raw).post("/api/v1/edge/register", {"name": "a"}, format="json"), 401)


def test_keys_used_together_are_marked_in_one_conditional_update(org, django_assert_num_queries, monkeypatch):
    """What a batch of socket heartbeats does (edge.consumers): one UPDATE for all its keys, which
    leaves a key written in the last minute (by any process) as it is."""
    from apikeys import services

    fresh, fresh_raw = make_key(org, name="fresh")
    stale, stale_raw = make_key(org, name="stale")
    services.authenticate(fresh_raw), services.authenticate(stale_raw)  # the records cached
    recently = timezone.now() - timedelta(seconds=10)
    APIKey.objects.filter(pk=fresh.pk).update(last_used_at=recently)
    APIKey.objects.filter(pk=stale.pk).update(last_used_at=None)
    monkeypatch.setattr(services, "_touched_here", {})  # as in a process that has not seen them yet
    # The UPDATE; without Redis also each key's record (read from the database every time).
    with django_assert_num_queries(1 if settings.REDIS_URL else 3), services.touches_deferred():
        assert services.authenticate(fresh_raw) is not None and services.authenticate(stale_raw) is not None
    fresh.refresh_from_db(), stale.refresh_from_db()
    assert fresh.last_used_at == recently and stale.last_used_at > recently
