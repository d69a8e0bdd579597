"""`manage.py sendalerts`: transitions found once, delivered to a real receiver on 127.0.0.1 (signed
webhooks, email), retried, refused when the address is private; key expiry; retention.

Agents go offline by the passage of time: the `clock` fixture moves the service's clock past
AGENT_OFFLINE_AFTER (its default, 90 s) instead of the tests sleeping; the live test at the end,
whose sender processes cannot share a moved clock, shortens AGENT_OFFLINE_AFTER instead.
"""

import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tests.factories import OrganizationFactory
from agents.models import (
    Agent,
    AgentAnnouncement,
    DeliveryStatus,
    NotificationAttempt,
    NotificationDelivery,
    NotificationEvent,
)
from agents.notifications.sweep import sweep
from agents.tests.factories import AgentFactory, NotificationChannelFactory, NotificationDeliveryFactory
from apikeys import services as key_services
from apikeys.tests.factories import make_key
from bench.live import database_url_of_test_db
from bench.receiver import Receiver

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/notification-channels"
OFFLINE_AFTER = 90  # AGENT_OFFLINE_AFTER's default, which these tests keep


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def allow_private(settings):
    # The receiver listens on 127.0.0.1, a loopback address the SSRF guard refuses by default.
    settings.WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def edge(org):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(org)[1])
    return client


def register(edge, name: str, labels: dict | None = None) -> str:
    r = edge.post("/api/v1/edge/register", {"name": name, "labels": labels or {}}, format="json")
    assert r.status_code in (200, 201), r.json()
    return r.json()["id"]


def beat(edge, agent_id: str, status: str = "online", **body) -> None:
    r = edge.post(f"/api/v1/edge/agents/{agent_id}/heartbeat", {"status": status, **body}, format="json")
    assert r.status_code == 200, r.json()


def sendalerts(*args: str) -> str:
    out = StringIO()
    call_command("sendalerts", "--once", *args, stdout=out)
    return out.getvalue()


def add_webhook(admin_client, url: str, **fields) -> tuple[dict, str]:
    body = {
        "name": fields.pop("name", "ops"),
        "kind": "webhook",
        "url": url,
        "events": ["agent.offline", "agent.online"],
    }
    r = admin_client.post(CHANNELS, {**body, **fields}, format="json")
    assert r.status_code == 201, r.json()
    channel = r.json()
    return channel, channel.pop("secret")


def deliveries(channel_id=None, **filters):
    queryset = NotificationDelivery.objects.select_related("event").order_by("created_at", "id")
    if channel_id is not None:
        queryset = queryset.filter(channel_id=channel_id)
    return list(queryset.filter(**filters))


def seen_online(edge, name="store-01", labels=None) -> str:
    """An agent the sender knows as online: registered, swept, heartbeat, swept (nothing announced)."""
    agent_id = register(edge, name, labels)
    sendalerts()
    beat(edge, agent_id)
    sendalerts()
    return agent_id


def test_offline_and_back_online_are_announced_once_each_signed(
    admin_client, org, edge, receiver, allow_private, clock
):
    channel, secret = add_webhook(admin_client, f"{receiver.url}/hooks/logfleet?team=ops")
    agent_id = seen_online(edge, labels={"env": "prod"})
    assert NotificationEvent.objects.count() == 0 and receiver.requests == []  # not on its first heartbeat

    clock.advance(OFFLINE_AFTER + 1)
    for _ in range(3):  # however many sweeps run
        sendalerts()
    assert [d.event.type for d in deliveries()] == ["agent.offline"]
    (offline,) = receiver.requests
    assert offline.path == "/hooks/logfleet?team=ops"
    assert offline.signed_with(secret)
    body = offline.json()
    event = NotificationEvent.objects.get()
    assert offline.headers["Content-Type"] == "application/json"
    assert offline.headers["User-Agent"] == "LogFleet-Webhooks/1"
    assert offline.headers["X-LogFleet-Event"] == "agent.offline" == body["type"]
    assert offline.headers["X-LogFleet-Delivery"] == str(event.pk) == body["id"]
    assert abs(int(offline.headers["X-LogFleet-Timestamp"]) - time.time()) < 60
    agent = Agent.objects.get(pk=agent_id)
    assert body == {
        "id": str(event.pk),
        "type": "agent.offline",
        "occurred_at": body["occurred_at"],
        "organization_id": str(org.pk),
        "agent": {
            "id": agent_id,
            "name": "store-01",
            "labels": {"env": "prod"},
            "status": "offline",
            "last_heartbeat_at": agent.last_heartbeat_at.isoformat().replace("+00:00", "Z"),
        },
        "data": {"previous_status": "online", "reason": "silent", "offline_after_seconds": OFFLINE_AFTER},
    }
    assert body["occurred_at"].endswith("Z")
    delivered = deliveries()[0]
    assert (delivered.status, delivered.attempts, delivered.response_status) == ("delivered", 1, 204)
    listed = admin_client.get(f"{CHANNELS}/{channel['id']}").json()["last_delivery"]
    assert listed["status"] == "delivered"

    beat(edge, agent_id)
    sendalerts()
    sendalerts()
    assert [d.event.type for d in deliveries()] == ["agent.offline", "agent.online"]
    assert [r.headers["X-LogFleet-Event"] for r in receiver.requests] == ["agent.offline", "agent.online"]
    back = receiver.requests[1]
    assert back.signed_with(secret) and back.json()["data"] == {"previous_status": "offline"}
    assert back.json()["agent"]["status"] == "online"


def test_errors_and_failed_configs_are_announced_once_per_hash(admin_client, edge, receiver, allow_private):
    add_webhook(admin_client, receiver.url, events=["agent.error", "agent.config_failed", "agent.online"])
    agent_id = seen_online(edge)
    beat(edge, agent_id, "error")
    sendalerts()
    sendalerts()
    assert [r.headers["X-LogFleet-Event"] for r in receiver.requests] == ["agent.error"]
    assert receiver.requests[0].json()["data"] == {"previous_status": "online"}
    beat(edge, agent_id)  # error → online is recorded, not announced as coming back (it never left)
    sendalerts()
    failed = {"hash": "h1", "state": "failed", "errors": [{"message": "cannot open /var/log/x"}]}
    for _ in range(2):
        beat(edge, agent_id, config_status=failed)
        sendalerts()
    beat(edge, agent_id, config_status={**failed, "hash": "h2"})
    sendalerts()
    assert [r.headers["X-LogFleet-Event"] for r in receiver.requests] == [
        "agent.error",
        "agent.config_failed",
        "agent.config_failed",
    ]
    first = receiver.requests[1].json()["data"]
    assert first == {"hash": "h1", "errors": [{"message": "cannot open /var/log/x"}]}
    assert receiver.requests[2].json()["data"]["hash"] == "h2"


def test_a_failing_receiver_is_retried_with_backoff_and_ends_delivered(admin_client, edge, allow_private, clock):
    receiver = Receiver(answers=[500, 503])
    try:
        channel, secret = add_webhook(admin_client, receiver.url)
        seen_online(edge)
        clock.advance(OFFLINE_AFTER + 1)
        sendalerts()
        (delivery,) = deliveries()
        assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 500)
        assert delivery.error == "answered HTTP 500" and delivery.response_body == "answer 500"
        assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(seconds=30)
        sendalerts()  # not due yet: nothing is sent
        assert len(receiver.requests) == 1
        clock.advance(31)
        sendalerts()
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.response_status) == (2, 503)
        assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(seconds=60)
        clock.advance(61)
        sendalerts()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.response_status, delivery.error) == (
            "delivered",
            3,
            204,
            "",
        )
        # The same event each time: the receiver can tell a repeat by its id.
        assert len({r.headers["X-LogFleet-Delivery"] for r in receiver.requests}) == 1 and len(receiver.requests) == 3
        assert all(r.signed_with(secret) for r in receiver.requests)
        attempts = list(NotificationAttempt.objects.filter(delivery=delivery).values_list("number", "response_status"))
        assert attempts == [(1, 500), (2, 503), (3, 204)]
        listed = admin_client.get(f"{CHANNELS}/{channel['id']}/deliveries").json()["items"][0]
        assert (listed["status"], listed["attempts"], listed["response_status"]) == ("delivered", 3, 204)
    finally:
        receiver.stop()


def test_a_receiver_that_keeps_failing_is_given_up_after_24_hours(admin_client, edge, allow_private, clock):
    receiver = Receiver(answers=[500] * 100)
    try:
        add_webhook(admin_client, receiver.url)
        seen_online(edge)
        clock.advance(OFFLINE_AFTER + 1)
        sendalerts()
        delays = []
        while (delivery := deliveries()[0]).status == DeliveryStatus.PENDING:
            delays.append(round((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()))
            clock.advance(delays[-1] + 1)
            sendalerts()
        assert delays[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600] and set(delays[8:]) == {3600}
        assert delivery.status == "failed" and delivery.next_attempt_at is None
        assert 24 * 3600 <= (delivery.last_attempt_at - delivery.created_at).total_seconds() < 25 * 3600
        assert len(receiver.requests) == delivery.attempts == len(delays) + 1
    finally:
        receiver.stop()


def test_redirects_are_not_followed(admin_client, edge, allow_private, clock):
    receiver = Receiver(answers=[302])
    try:
        add_webhook(admin_client, receiver.url)
        seen_online(edge)
        clock.advance(OFFLINE_AFTER + 1)
        sendalerts()
        assert [r.path for r in receiver.requests] == ["/"]  # never /redirected
        (delivery,) = deliveries()
        assert (delivery.status, delivery.response_status) == ("pending", 302)
    finally:
        receiver.stop()


def test_a_disabled_channel_gets_nothing_and_the_selector_narrows(admin_client, edge, receiver, allow_private, clock):
    enabled, _ = add_webhook(admin_client, f"{receiver.url}/all", name="all")
    disabled, _ = add_webhook(admin_client, f"{receiver.url}/disabled", name="disabled", enabled=False)
    prod, _ = add_webhook(admin_client, f"{receiver.url}/prod", name="prod", agent_selector={"env": "prod"})
    seen_online(edge, "store-01", {"env": "prod", "region": "eu"})
    seen_online(edge, "store-02", {"env": "dev"})
    clock.advance(OFFLINE_AFTER + 1)
    sendalerts()
    got = Counter((r.path, r.json()["agent"]["name"]) for r in receiver.requests)
    assert got == {("/all", "store-01"): 1, ("/all", "store-02"): 1, ("/prod", "store-01"): 1}
    assert deliveries(disabled["id"]) == []
    assert len(deliveries(enabled["id"])) == 2 and len(deliveries(prod["id"])) == 1


def test_a_channel_disabled_after_the_event_does_not_get_it(admin_client, edge, receiver, allow_private, clock):
    channel, _ = add_webhook(admin_client, receiver.url)
    seen_online(edge)
    clock.advance(OFFLINE_AFTER + 1)
    sweep()  # the event is written; before it is sent, the channel is turned off
    assert admin_client.patch(f"{CHANNELS}/{channel['id']}", {"enabled": False}, format="json").status_code == 200
    sendalerts()
    (delivery,) = deliveries()
    assert delivery.status == "failed" and "disabled" in delivery.error and receiver.requests == []


def test_the_test_endpoint_sends_a_signed_test_event(admin_client, receiver, allow_private, org):
    channel, secret = add_webhook(admin_client, receiver.url)
    r = admin_client.post(f"{CHANNELS}/{channel['id']}/test")
    assert r.status_code == 202, r.json()
    sendalerts()
    (request,) = receiver.requests
    assert request.signed_with(secret) and request.headers["X-LogFleet-Event"] == "test"
    body = request.json()
    assert body["id"] == r.json()["event_id"] == request.headers["X-LogFleet-Delivery"]
    assert body["organization_id"] == str(org.pk) and "agent" not in body and "api_key" not in body
    assert body["data"]["channel_id"] == channel["id"]
    listed = admin_client.get(f"{CHANNELS}/{channel['id']}/deliveries").json()["items"]
    assert [(item["event"], item["status"]) for item in listed] == [("test", "delivered")]


def test_a_signature_made_with_another_secret_does_not_verify(admin_client, receiver, allow_private):
    channel, secret = add_webhook(admin_client, receiver.url)
    admin_client.post(f"{CHANNELS}/{channel['id']}/test")
    sendalerts()
    (request,) = receiver.requests
    assert request.signed_with(secret) and not request.signed_with(secret + "x")
    tampered = type(request)(request.path, request.headers, request.body.replace(b'"test"', b'"agent.offline"'))
    assert not tampered.signed_with(secret)


def test_a_private_address_is_refused_at_delivery_too(admin_client, edge, receiver, settings, clock, monkeypatch):
    """DNS rebinding: the name resolved to a public address when the channel was written and resolves
    to the receiver's loopback address when the event is sent; nothing reaches the receiver."""
    port = receiver.server.server_address[1]
    answers = {"public": [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "hooks.example.com":
            return answers["now"] if "now" in answers else answers["public"]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    add_webhook(admin_client, f"http://hooks.example.com:{port}/hook")
    answers["now"] = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
    seen_online(edge)
    clock.advance(OFFLINE_AFTER + 1)
    sendalerts()
    (delivery,) = deliveries()
    assert delivery.status == "pending" and "127.0.0.1" in delivery.error and "private" in delivery.error
    assert receiver.requests == []
    settings.WEBHOOK_ALLOW_PRIVATE = True  # what the operator's WEBHOOK_ALLOW_PRIVATE=true allows
    clock.advance(31)
    sendalerts()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and len(receiver.requests) == 1
    assert receiver.requests[0].headers["Host"] == f"hooks.example.com:{port}"  # the URL's host, not the address


def test_the_next_checked_address_is_tried_when_one_refuses(admin_client, receiver, allow_private, monkeypatch):
    port = receiver.server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "hooks.example.com":  # nothing listens on 127.0.0.2: the first address refuses
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("127.0.0.2", "127.0.0.1")]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    channel, secret = add_webhook(admin_client, f"http://hooks.example.com:{port}/hook")
    admin_client.post(f"{CHANNELS}/{channel['id']}/test")
    sendalerts()
    (request,) = receiver.requests
    assert request.signed_with(secret) and deliveries()[0].status == "delivered"


def test_email_channels_get_one_message_per_event_with_the_agents_link(admin_client, edge, clock):
    r = admin_client.post(
        CHANNELS,
        {"name": "mail", "kind": "email", "email": "ops@example.com", "events": ["agent.offline"]},
        format="json",
    )
    assert r.status_code == 201, r.json()
    agent_id = seen_online(edge, "store-09")
    clock.advance(OFFLINE_AFTER + 1)
    sendalerts()
    sendalerts()
    (message,) = mail.outbox
    assert message.to == ["ops@example.com"] and message.from_email == django_settings.DEFAULT_FROM_EMAIL
    assert message.subject == "[LogFleet] Agent store-09 is offline"
    assert f"{django_settings.PUBLIC_URL}/agents/{agent_id}" in message.body
    assert deliveries()[0].status == "delivered"


def test_keys_expiring_within_seven_days_are_announced_once(admin_client, org, receiver, allow_private, clock):
    _channel, secret = add_webhook(admin_client, receiver.url, events=["api_key.expiring"])
    soon, _ = make_key(org, name="soon", expires_at=timezone.now() + timedelta(days=3))
    make_key(org, name="later", expires_at=timezone.now() + timedelta(days=30))
    rotated, _ = make_key(org, name="rotated")
    key_services.api_key_rotate(key=rotated, grace_seconds=3600, actor=key_services.Actor())  # its end was chosen
    make_key(OrganizationFactory(), name="elsewhere", expires_at=timezone.now() + timedelta(days=1))
    sendalerts()
    sendalerts()
    assert [r.json()["api_key"]["name"] for r in receiver.requests] == ["soon"]
    body = receiver.requests[0].json()
    assert receiver.requests[0].signed_with(secret) and body["type"] == "api_key.expiring"
    assert body["api_key"] == {
        "id": str(soon.pk),
        "name": "soon",
        "prefix": soon.key_prefix,
        "expires_at": soon.expires_at.isoformat().replace("+00:00", "Z"),
    }
    clock.advance(24 * 86400)  # `later` now expires in 6 days
    sendalerts()
    assert [r.json()["api_key"]["name"] for r in receiver.requests] == ["soon", "later"]


def test_old_deliveries_and_events_are_pruned_by_the_sweep(settings, clock):
    settings.NOTIFICATION_RETENTION_DAYS = 7  # a week instead of 30 days: the bound under test
    channel = NotificationChannelFactory(enabled=False)
    old = NotificationDeliveryFactory(channel=channel, status="delivered", next_attempt_at=None)
    NotificationAttempt.objects.create(delivery=old, number=1, response_status=204)
    clock.advance(8 * 86400)
    recent = NotificationDeliveryFactory(channel=channel, status="delivered", next_attempt_at=None)
    sendalerts()
    assert list(NotificationDelivery.objects.all()) == [recent]
    assert list(NotificationEvent.objects.all()) == [recent.event] and not NotificationAttempt.objects.exists()


def test_deleting_an_agent_mid_way_does_not_stop_the_sender(admin_client, edge, receiver, allow_private, clock):
    add_webhook(admin_client, receiver.url)
    gone = seen_online(edge, "gone")
    stays = seen_online(edge, "stays")
    clock.advance(OFFLINE_AFTER + 1)
    Agent.objects.filter(pk=gone).delete()
    sendalerts()
    assert [r.json()["agent"]["id"] for r in receiver.requests] == [stays]
    assert not AgentAnnouncement.objects.filter(agent_id=gone).exists()


def test_sendalerts_refuses_bad_arguments():
    from django.core.management import CommandError

    for args in (["--interval", "0"], ["--workers", "0"], ["--workers", "65"]):
        with pytest.raises(CommandError):
            call_command("sendalerts", "--once", *args, stdout=StringIO())


# --- any number of senders at once (PostgreSQL) ----------------------------------------------------


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent senders claim rows with SKIP LOCKED")
def test_two_senders_at_once_deliver_each_event_once(settings):
    # The sender processes cannot share a moved clock: agents go quiet for real, for 2 s.
    settings.AGENT_OFFLINE_AFTER = 2
    # A receiver slow enough (50 ms an answer) that the senders' deliveries overlap.
    receiver = Receiver(delay=0.05)
    org = OrganizationFactory()
    channels = [
        NotificationChannelFactory(organization=org, url=f"{receiver.url}/c{i}", secret="whsec_live") for i in range(3)
    ]
    agents = [AgentFactory(organization=org, online=True) for _ in range(150)]
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url_of_test_db(),
        "SECRET_KEY": django_settings.SECRET_KEY,
        "AGENT_OFFLINE_AFTER": "2",
        # The receiver listens on 127.0.0.1, which the SSRF guard refuses by default.
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }
    Agent.objects.filter(organization=org).update(last_heartbeat_at=timezone.now())  # all online now
    assert sweep().baselined == len(agents)  # every agent recorded as online
    assert AgentAnnouncement.objects.filter(status="online").count() == len(agents)
    # Deliveries already due when the senders start (tests of the first channel), for both to claim.
    waiting = [NotificationDeliveryFactory(channel=channels[0]) for _ in range(100)]
    time.sleep(2.5)
    senders = [
        subprocess.Popen(
            [sys.executable, "manage.py", "sendalerts", "--once"],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [sender.communicate(timeout=120) for sender in senders]
    finally:
        receiver.stop()
    assert all(sender.returncode == 0 for sender in senders), outputs
    events = NotificationEvent.objects.filter(type="agent.offline")
    assert events.count() == len(agents)
    assert Counter(events.values_list("agent_id", flat=True)) == Counter({agent.pk: 1 for agent in agents})
    expected = len(agents) * len(channels) + len(waiting)
    assert NotificationDelivery.objects.filter(status="delivered").count() == expected
    got = Counter((r.path, r.headers["X-LogFleet-Delivery"]) for r in receiver.requests)
    assert len(got) == expected and set(got.values()) == {1}, "an event was sent twice"
    assert all(r.signed_with("whsec_live") for r in receiver.requests)
    # Their reports add up to every transition and every delivery, each counted by one of them.
    transitions = [int(out.split(" transitions")[0]) for out, _err in outputs]
    sent = [int(out.split("; sent ")[1].split(":")[0]) for out, _err in outputs]
    assert sum(transitions) == len(agents) and sum(sent) == expected, outputs
    # Both claimed deliveries from the same due ones (the receiver is slow enough for one to take ~3 s alone).
    assert min(sent) > 0, outputs
