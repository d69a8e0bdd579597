"""Reads of notification channels and their deliveries, which the API and the dashboard share."""

from django.core.exceptions import ValidationError
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from agents.models import NotificationAttempt, NotificationChannel, NotificationDelivery
from logfleet.errors import NotFound


def notification_channel_list(*, organization_id) -> QuerySet[NotificationChannel]:
    """The organization's channels by name (ties by id), each with `last_delivery_status` and
    `last_delivery_at` (its newest delivery's status, and when it was delivered, last tried or
    created), both None before its first delivery."""
    newest = NotificationDelivery.objects.filter(channel=OuterRef("pk")).order_by("-created_at", "-id")
    return (
        NotificationChannel.objects.filter(organization_id=organization_id)
        .annotate(
            last_delivery_status=Subquery(newest.values("status")[:1]),
            last_delivery_at=Subquery(
                newest.annotate(at=Coalesce("delivered_at", "last_attempt_at", "created_at")).values("at")[:1]
            ),
        )
        .order_by(F("name").asc(), "id")
    )


def notification_channel_get(*, organization_id, channel_id) -> NotificationChannel:
    """One channel of the organization (annotated as in the list); NotFound otherwise, also for an
    id that is not one."""
    try:
        channel = notification_channel_list(organization_id=organization_id).filter(pk=channel_id).first()
    except (ValueError, ValidationError):
        channel = None
    if channel is None:
        raise NotFound()
    return channel


def notification_delivery_list(*, channel: NotificationChannel) -> QuerySet[NotificationDelivery]:
    """The channel's deliveries, newest first (ties by id), with their events."""
    return NotificationDelivery.objects.filter(channel=channel).select_related("event").order_by("-created_at", "-id")


def notification_delivery_attempts(*, delivery: NotificationDelivery) -> QuerySet[NotificationAttempt]:
    """Every attempt of a delivery, first to last."""
    return NotificationAttempt.objects.filter(delivery=delivery).order_by("number")


def notification_delivery_recent(*, organization_id, channel_id=None) -> QuerySet[NotificationDelivery]:
    """The organization's deliveries to all its channels (or to the channel `channel_id` only),
    newest first (ties by id), with their events and channels: the dashboard's Deliveries table."""
    deliveries = NotificationDelivery.objects.filter(channel__organization_id=organization_id)
    if channel_id is not None:
        deliveries = deliveries.filter(channel_id=channel_id)
    return deliveries.select_related("event", "channel").order_by("-created_at", "-id")


def notification_delivery_rows(*, ids) -> dict:
    """Deliveries by id, with their events and channels: the rows of a page whose ids a scoped
    selector (notification_delivery_recent) listed, read by primary key alone."""
    return NotificationDelivery.objects.select_related("event", "channel").in_bulk(list(ids))
