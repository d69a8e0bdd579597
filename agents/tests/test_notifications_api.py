"""The notification channels API (API.md section 11): admin only, organization scope, the secret
answered once, the SSRF guard at write time, tests and the delivery log."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Role
from agents.models import DeliveryStatus, NotificationChannel, NotificationDelivery
from agents.notifications import secrets
from agents.tests.factories import NotificationChannelFactory, NotificationDeliveryFactory
from logfleet.testing import ResourceBattery, assert_error

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/notification-channels"
# A public address written as a literal, so that the SSRF guard checks it without any DNS (a test
# never depends on the network).
PUBLIC_URL = "https://93.184.216.34/hooks/logfleet"
WEBHOOK = {"name": "ops", "kind": "webhook", "url": PUBLIC_URL, "events": ["agent.offline", "agent.online"]}
EMAIL = {"name": "ops mail", "kind": "email", "email": "ops@example.com", "events": ["agent.offline"]}


def channel_url(channel_id) -> str:
    return f"{CHANNELS}/{channel_id}"


def test_notification_channels_resource_battery(org, other_org, role_clients):
    channel = NotificationChannelFactory(organization=org)
    ResourceBattery(
        list_url=CHANNELS,
        detail_url=channel_url,
        make_in=lambda organization: NotificationChannelFactory(organization=organization).pk,
        writes=[
            ("post", CHANNELS, WEBHOOK),
            ("patch", channel_url(channel.pk), {"enabled": False}),
            ("delete", channel_url(channel.pk), None),
            ("post", f"{channel_url(channel.pk)}/test", None),
        ],
        forbidden_roles=(Role.MEMBER, Role.VIEWER),
        read_roles=(Role.ADMIN,),
    ).run(org=org, other_org=other_org, role_clients=role_clients)
    assert NotificationChannel.objects.get(pk=channel.pk).enabled  # the refused writes changed nothing


def test_members_and_viewers_cannot_read_deliveries_either(org, member_client, viewer_client):
    channel = NotificationChannelFactory(organization=org)
    for client in (member_client, viewer_client):
        assert_error(client.get(channel_url(channel.pk)), 403, "permission_denied")
        assert_error(client.get(f"{channel_url(channel.pk)}/deliveries"), 403, "permission_denied")


def test_create_a_webhook_channel_answers_its_secret_once(admin_client, org):
    r = admin_client.post(CHANNELS, {**WEBHOOK, "agent_selector": {"env": "prod"}}, format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    secret = body.pop("secret")
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body == {
        "id": body["id"],
        "name": "ops",
        "kind": "webhook",
        "url": PUBLIC_URL,
        "email": "",
        "events": ["agent.offline", "agent.online"],
        "agent_selector": {"env": "prod"},
        "enabled": True,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "last_delivery": None,
    }
    assert body["created_at"].endswith("Z")
    # Never again: not in the list, not in the channel, not in the database as written.
    assert "secret" not in admin_client.get(channel_url(body["id"])).json()
    assert all("secret" not in item for item in admin_client.get(CHANNELS).json()["items"])
    stored = NotificationChannel.objects.get(pk=body["id"])
    assert secret not in stored.secret_encrypted and secrets.decrypt(stored.secret_encrypted) == secret
    event = AuditEvent.objects.get(action="notification_channel.created")
    assert (event.target_type, event.target_id, event.actor_email) == (
        "notification_channel",
        body["id"],
        admin_client.user.email,
    )
    assert secret not in str(event.metadata) and PUBLIC_URL not in str(event.metadata)


def test_create_an_email_channel(admin_client):
    r = admin_client.post(CHANNELS, EMAIL, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["secret"] is None and r.json()["email"] == "ops@example.com" and r.json()["url"] == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.8.9.10:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::a00:1]/hook",
        "http://240.0.0.1/hook",
    ],
)
def test_a_webhook_url_that_resolves_to_a_private_address_is_refused(admin_client, url):
    body = assert_error(admin_client.post(CHANNELS, {**WEBHOOK, "url": url}, format="json"), 400, "validation_error")
    assert "url" in body["details"], body
    assert not NotificationChannel.objects.exists()


def test_private_urls_are_allowed_when_the_operator_says_so(admin_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True  # what WEBHOOK_ALLOW_PRIVATE=true sets: the setting under test
    r = admin_client.post(CHANNELS, {**WEBHOOK, "url": "http://127.0.0.1:9/hook"}, format="json")
    assert r.status_code == 201, r.json()


def test_a_url_changed_to_a_private_address_is_refused_and_nothing_changes(admin_client, org):
    channel = NotificationChannelFactory(organization=org, url=PUBLIC_URL)
    r = admin_client.patch(channel_url(channel.pk), {"url": "http://10.0.0.5/", "name": "renamed"}, format="json")
    assert "url" in assert_error(r, 400, "validation_error")["details"]
    channel.refresh_from_db()
    assert (channel.url, channel.name) != ("http://10.0.0.5/", "renamed") and channel.url == PUBLIC_URL


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**WEBHOOK, "url": ""}, "url"),
        ({k: v for k, v in WEBHOOK.items() if k != "url"}, "url"),
        ({**WEBHOOK, "url": "ftp://93.184.216.34/x"}, "url"),
        ({**WEBHOOK, "url": "https://user:pw@93.184.216.34/x"}, "url"),
        ({**WEBHOOK, "url": "not a url"}, "url"),
        ({**WEBHOOK, "url": "https://93.184.216.34:99999/x"}, "url"),
        ({**WEBHOOK, "url": "https://93.184.216.34/" + "x" * 2048}, "url"),
        ({**WEBHOOK, "email": "ops@example.com"}, "email"),
        ({**EMAIL, "email": ""}, "email"),
        ({**EMAIL, "email": "not-an-address"}, "email"),
        ({**EMAIL, "url": PUBLIC_URL}, "url"),
        ({**WEBHOOK, "events": []}, "events"),
        ({**WEBHOOK, "events": ["agent.exploded"]}, "events"),
        ({**WEBHOOK, "events": ["test"]}, "events"),
        ({**WEBHOOK, "events": "agent.offline"}, "events"),
        ({**WEBHOOK, "agent_selector": {"bad key!": "x"}}, "agent_selector"),
        ({**WEBHOOK, "agent_selector": {f"k{i}": "v" for i in range(33)}}, "agent_selector"),
        ({**WEBHOOK, "agent_selector": ["env"]}, "agent_selector"),
        ({**WEBHOOK, "kind": "sms"}, "kind"),
        ({**WEBHOOK, "name": ""}, "name"),
        ({**WEBHOOK, "name": "n" * 129}, "name"),
        ({**WEBHOOK, "name": "bad\x00name"}, "name"),
        ({**WEBHOOK, "enabled": "perhaps"}, "enabled"),
        # Strings are strings, and each kind has its own shape (the schema's oneOf by kind).
        ({**WEBHOOK, "name": 0}, "name"),
        ({**WEBHOOK, "url": 5}, "url"),
        ({**EMAIL, "email": " ops@example.com"}, "email"),
        ({**WEBHOOK, "url": " " + PUBLIC_URL}, "url"),
        ({k: v for k, v in WEBHOOK.items() if k != "kind"}, "kind"),
        ({**WEBHOOK, "kind": 1}, "kind"),
    ],
)
def test_bad_channels_are_400_naming_the_field_and_nothing_is_written(admin_client, body, field):
    r = admin_client.post(CHANNELS, body, format="json")
    details = assert_error(r, 400, "validation_error")["details"]
    assert any(key == field or key.startswith(f"{field}.") for key in details), details
    assert (
        not NotificationChannel.objects.exists() and not AuditEvent.objects.filter(action__startswith="notif").exists()
    )


def test_update_and_delete_are_audited(admin_client, org):
    created = admin_client.post(CHANNELS, WEBHOOK, format="json").json()
    r = admin_client.patch(
        channel_url(created["id"]),
        {"enabled": False, "events": ["agent.error"], "agent_selector": {"env": "prod"}, "id": str(uuid.uuid4())},
        format="json",
    )
    assert r.status_code == 200, r.json()
    assert (r.json()["enabled"], r.json()["events"], r.json()["agent_selector"]) == (
        False,
        ["agent.error"],
        {"env": "prod"},
    )
    assert r.json()["id"] == created["id"] and "secret" not in r.json()
    updated = AuditEvent.objects.get(action="notification_channel.updated")
    assert updated.metadata["fields"] == ["agent_selector", "enabled", "events"]
    assert admin_client.delete(channel_url(created["id"])).status_code == 204
    assert not NotificationChannel.objects.exists()
    assert AuditEvent.objects.filter(action="notification_channel.deleted", target_id=created["id"]).exists()
    assert_error(admin_client.get(channel_url(created["id"])), 404, "not_found")


def test_an_empty_patch_changes_nothing_and_bad_patches_are_400(admin_client, org):
    created = admin_client.post(CHANNELS, WEBHOOK, format="json").json()
    r = admin_client.patch(channel_url(created["id"]), {}, format="json")
    assert r.status_code == 200, r.json()
    assert {k: v for k, v in r.json().items() if k != "updated_at"} == {
        k: v for k, v in created.items() if k not in ("updated_at", "secret")
    }
    for body, field in (
        ({"name": 0}, "name"),
        ({"enabled": 1}, "enabled"),
        ({"url": ""}, "url"),
        ({"email": "ops@example.com"}, "email"),
    ):
        details = assert_error(admin_client.patch(channel_url(created["id"]), body, format="json"), 400)["details"]
        assert field in details, (body, details)
    assert admin_client.get(channel_url(created["id"])).json()["name"] == "ops"


def test_the_kind_of_a_channel_cannot_change(admin_client, org):
    channel = NotificationChannelFactory(organization=org)
    r = admin_client.patch(channel_url(channel.pk), {"kind": "email", "email": "a@example.com"}, format="json")
    assert "kind" in assert_error(r, 400, "validation_error")["details"]
    same = admin_client.patch(channel_url(channel.pk), {"kind": "webhook", "name": "same kind"}, format="json")
    assert same.status_code == 200, same.json()


def test_names_are_unique_in_an_organization(admin_client, org, other_org):
    NotificationChannelFactory(organization=other_org, name="ops")  # another organization's: no matter
    assert admin_client.post(CHANNELS, WEBHOOK, format="json").status_code == 201
    body = assert_error(admin_client.post(CHANNELS, EMAIL | {"name": "ops"}, format="json"), 409, "conflict")
    assert "name" in body["details"]


def test_channels_per_organization_are_bounded(admin_client, org, settings):
    settings.MAX_NOTIFICATION_CHANNELS_PER_ORG = 2  # the bound, reached with two channels instead of 50
    NotificationChannelFactory(organization=org)
    assert admin_client.post(CHANNELS, WEBHOOK, format="json").status_code == 201
    body = assert_error(admin_client.post(CHANNELS, EMAIL, format="json"), 409, "conflict")
    assert body["details"] == {"limit": 2}


def test_sending_a_test_answers_202_with_a_pending_delivery(admin_client, org):
    channel = NotificationChannelFactory(organization=org, enabled=False)  # a test reaches a disabled channel
    r = admin_client.post(f"{channel_url(channel.pk)}/test")
    assert r.status_code == 202, r.json()
    delivery = r.json()
    assert (delivery["event"], delivery["status"], delivery["attempts"]) == ("test", "pending", 0)
    stored = NotificationDelivery.objects.select_related("event").get(pk=delivery["id"])
    assert str(stored.event_id) == delivery["event_id"] == stored.event.payload["id"]
    assert stored.event.payload["type"] == "test" and stored.event.payload["organization_id"] == str(org.pk)
    listed = admin_client.get(f"{channel_url(channel.pk)}/deliveries").json()
    assert [item["id"] for item in listed["items"]] == [delivery["id"]]
    assert admin_client.get(channel_url(channel.pk)).json()["last_delivery"]["status"] == "pending"


def test_tests_waiting_to_be_sent_are_bounded(admin_client, org):
    channel = NotificationChannelFactory(organization=org)
    for _ in range(5):
        assert admin_client.post(f"{channel_url(channel.pk)}/test").status_code == 202
    assert_error(admin_client.post(f"{channel_url(channel.pk)}/test"), 409, "conflict")
    NotificationDelivery.objects.update(status=DeliveryStatus.DELIVERED)
    assert admin_client.post(f"{channel_url(channel.pk)}/test").status_code == 202


def test_deliveries_are_listed_newest_first_with_their_fields(admin_client, org, other_admin_client):
    channel = NotificationChannelFactory(organization=org)
    now = timezone.now()
    old = NotificationDeliveryFactory(channel=channel, created_at=now - timedelta(hours=2))
    new = NotificationDeliveryFactory(
        channel=channel,
        created_at=now - timedelta(minutes=1),
        status=DeliveryStatus.DELIVERED,
        attempts=2,
        response_status=204,
        delivered_at=now,
        next_attempt_at=None,
    )
    NotificationDeliveryFactory()  # another channel's
    r = admin_client.get(f"{channel_url(channel.pk)}/deliveries")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["total"] == 2 and [item["id"] for item in body["items"]] == [str(new.pk), str(old.pk)]
    first = body["items"][0]
    assert {key: first[key] for key in ("event_id", "event", "status", "attempts", "response_status", "error")} == {
        "event_id": str(new.event_id),
        "event": "test",
        "status": "delivered",
        "attempts": 2,
        "response_status": 204,
        "error": "",
    }
    assert first["delivered_at"].endswith("Z") and first["created_at"].endswith("Z")
    channel_body = admin_client.get(channel_url(channel.pk)).json()
    assert channel_body["last_delivery"] == {"status": "delivered", "at": first["delivered_at"]}
    # Another organization's admin learns nothing of them.
    assert_error(other_admin_client.get(f"{channel_url(channel.pk)}/deliveries"), 404, "not_found")
    assert_error(other_admin_client.post(f"{channel_url(channel.pk)}/test"), 404, "not_found")
    assert NotificationDelivery.objects.filter(channel=channel).count() == 2
