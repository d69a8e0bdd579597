"""The Django admin shows notification channels and deliveries read-only, never a secret."""

import pytest

from accounts.models import AuditEvent
from agents.models import NotificationAttempt, NotificationChannel
from agents.tests.factories import NotificationChannelFactory, NotificationDeliveryFactory

pytestmark = pytest.mark.django_db


def test_channels_are_listed_and_shown_without_their_secret(operator_client):
    channel = NotificationChannelFactory(secret="whsec_never-shown")
    listed = operator_client.get("/admin/agents/notificationchannel/")
    shown = operator_client.get(f"/admin/agents/notificationchannel/{channel.pk}/change/")
    for page in (listed, shown):
        assert page.status_code == 200
        html = page.content.decode()
        assert channel.name in html and "whsec_never-shown" not in html and channel.secret_encrypted not in html
    assert operator_client.get("/admin/agents/notificationchannel/add/").status_code == 403


def test_a_delivery_shows_every_attempt(operator_client):
    delivery = NotificationDeliveryFactory(attempts=2)
    NotificationAttempt.objects.create(delivery=delivery, number=1, response_status=500, response_body="boom")
    NotificationAttempt.objects.create(delivery=delivery, number=2, error="no answer within 10 s")
    page = operator_client.get(f"/admin/agents/notificationdelivery/{delivery.pk}/change/")
    assert page.status_code == 200
    assert "boom" in page.content.decode() and "no answer within 10 s" in page.content.decode()


def test_operators_can_disable_channels_and_it_is_audited(operator_client):
    channel = NotificationChannelFactory()
    r = operator_client.post(
        "/admin/agents/notificationchannel/",
        {"action": "disable_channels", "_selected_action": [str(channel.pk)]},
    )
    assert r.status_code == 302
    assert not NotificationChannel.objects.get(pk=channel.pk).enabled
    event = AuditEvent.objects.get(action="notification_channel.updated")
    assert event.target_id == str(channel.pk) and event.metadata["fields"] == ["enabled"]
