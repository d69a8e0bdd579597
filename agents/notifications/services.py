"""Notification channels: create (the webhook's signing secret is returned once), update, delete,
send a test. Admin only at the API; every change is audited.

The rules of a channel are checked here (`notification_channel_check`), whoever calls: the API, the
dashboard's /notifications page. A webhook URL is checked against the SSRF guard when it is written
(agents.notifications.webhooks), and again at every delivery.
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.services import audit_record, organization_quota_check
from agents.labels import clean_labels
from agents.models import (
    SUBSCRIBABLE_EVENTS,
    ChannelKind,
    DeliveryStatus,
    EventType,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from agents.notifications import events, secrets, webhooks
from logfleet.errors import Conflict, Invalid

NAME_MAX_LENGTH = NotificationChannel._meta.get_field("name").max_length
EMAIL_MAX_LENGTH = NotificationChannel._meta.get_field("email").max_length
URL_MAX_LENGTH = webhooks.URL_MAX_LENGTH
# Tests of one channel waiting to be sent: a person may send another once these went out.
MAX_PENDING_TESTS = 5
NAME_TAKEN = "A notification channel with this name already exists in the organization"
FIELDS = ("name", "kind", "url", "email", "events", "agent_selector", "enabled")


def _name(value) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > NAME_MAX_LENGTH or "\x00" in value:
        raise Invalid(details={"name": f"must be 1 to {NAME_MAX_LENGTH} characters"})
    return value


def _email(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(details={"email": "is required for an email channel"})
    value = value.strip()
    try:
        if len(value) > EMAIL_MAX_LENGTH:
            raise ValidationError("too long")
        validate_email(value)
    except ValidationError:
        raise Invalid(
            details={"email": f"must be a valid email address of at most {EMAIL_MAX_LENGTH} characters"}
        ) from None
    return value


def _events(value) -> list[str]:
    if not isinstance(value, list) or not value:
        raise Invalid(details={"events": f"must be a non-empty list of {', '.join(SUBSCRIBABLE_EVENTS)}"})
    unknown = [item for item in value if item not in SUBSCRIBABLE_EVENTS]
    if unknown:
        raise Invalid(details={"events": f"{str(unknown[0])[:64]!r} is not one of {', '.join(SUBSCRIBABLE_EVENTS)}"})
    return list(dict.fromkeys(value))


def _selector(value) -> dict:
    try:
        return clean_labels(value if value is not None else {})
    except Invalid as exc:
        raise exc.under("agent_selector") from None


def notification_channel_check(*, current: dict | None = None, **values) -> dict:
    """The channel's fields as stored, from `values` over `current` (its stored fields, for an update);
    Invalid naming every field that breaks a rule. The URL goes through the SSRF guard only when it
    is new (an unchanged URL is not resolved again to change another field)."""
    merged = {**(current or {}), **values}
    problems: dict[str, str] = {}
    cleaned: dict = {}

    def check(field, rule, *args):
        try:
            cleaned[field] = rule(*args)
        except Invalid as exc:
            problems.update(exc.details)

    kind = merged.get("kind")
    if current is not None and "kind" in values and values["kind"] != current["kind"]:
        problems["kind"] = "cannot change; create a channel of the other kind instead"
    elif kind not in ChannelKind.values:
        problems["kind"] = f"must be one of {', '.join(ChannelKind.values)}"
    if "name" in values or current is None:
        check("name", _name, merged.get("name"))
    if "events" in values or current is None:
        check("events", _events, merged.get("events"))
    if "agent_selector" in values or current is None:
        check("agent_selector", _selector, merged.get("agent_selector"))
    if "enabled" in values:
        if not isinstance(values["enabled"], bool):
            problems["enabled"] = "must be true or false"
        else:
            cleaned["enabled"] = values["enabled"]
    if kind == ChannelKind.WEBHOOK:
        if values.get("email"):
            problems["email"] = "is only for email channels"
        elif "url" in values or current is None:
            check("url", webhooks.url_check, merged.get("url"))
    elif kind == ChannelKind.EMAIL:
        if values.get("url"):
            problems["url"] = "is only for webhook channels"
        elif "email" in values or current is None:
            check("email", _email, merged.get("email"))
    if problems:
        raise Invalid(details=problems)
    if current is None:
        cleaned["kind"] = kind
    return cleaned


def notification_channel_quota_check(*, organization_id) -> None:
    """409 when the organization already has MAX_NOTIFICATION_CHANNELS_PER_ORG channels (locks it)."""
    organization_quota_check(
        organization_id=organization_id,
        queryset=NotificationChannel.objects.filter(organization_id=organization_id),
        limit=settings.MAX_NOTIFICATION_CHANNELS_PER_ORG,
        what="notification channels",
    )


def _name_conflict() -> Conflict:
    return Conflict(NAME_TAKEN, details={"name": "already used by another notification channel"})


@transaction.atomic
def notification_channel_create(
    *,
    organization: Organization,
    actor,
    name: str,
    kind: str,
    events: list[str],
    url: str = "",
    email: str = "",
    agent_selector: dict | None = None,
    enabled: bool = True,
    ip_address: str | None = None,
) -> tuple[NotificationChannel, str | None]:
    """(channel, secret): a webhook's signing secret (`whsec_...`) is returned here only; None for email."""
    fields = notification_channel_check(
        name=name, kind=kind, events=events, url=url, email=email, agent_selector=agent_selector, enabled=enabled
    )
    notification_channel_quota_check(organization_id=organization.pk)
    secret = secrets.generate() if fields["kind"] == ChannelKind.WEBHOOK else None
    channel = NotificationChannel(
        organization=organization,
        created_by=actor,
        secret_encrypted=secrets.encrypt(secret) if secret else "",
        **fields,
    )
    try:
        with transaction.atomic():
            channel.save()
    except IntegrityError:
        raise _name_conflict() from None
    audit_record(
        organization=organization,
        action="notification_channel.created",
        actor=actor,
        ip_address=ip_address,
        target_type="notification_channel",
        target_id=channel.pk,
        metadata={"name": channel.name, "kind": channel.kind, "events": channel.events},
    )
    return channel, secret


@transaction.atomic
def notification_channel_update(
    *, channel: NotificationChannel, actor, ip_address: str | None = None, **changes
) -> NotificationChannel:
    """Change any of name, url or email (of its kind), events, agent_selector, enabled; the kind stays."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise Invalid(details={field: "cannot be changed" for field in sorted(unknown)})
    current = {field: getattr(channel, field) for field in FIELDS}
    cleaned = notification_channel_check(current=current, **changes)
    changed = {field: value for field, value in cleaned.items() if getattr(channel, field) != value}
    if not changed:
        return channel
    for field, value in changed.items():
        setattr(channel, field, value)
    try:
        with transaction.atomic():
            channel.save(update_fields=[*changed, "updated_at"])
    except IntegrityError:
        raise _name_conflict() from None
    audit_record(
        organization=channel.organization,
        action="notification_channel.updated",
        actor=actor,
        ip_address=ip_address,
        target_type="notification_channel",
        target_id=channel.pk,
        metadata={"name": channel.name, "fields": sorted(changed)},
    )
    return channel


@transaction.atomic
def notification_channel_delete(*, channel: NotificationChannel, actor, ip_address: str | None = None) -> None:
    """The channel and its deliveries go; the events stay for the other channels that got them."""
    audit_record(
        organization=channel.organization,
        action="notification_channel.deleted",
        actor=actor,
        ip_address=ip_address,
        target_type="notification_channel",
        target_id=channel.pk,
        metadata={"name": channel.name, "kind": channel.kind},
    )
    channel.delete()


@transaction.atomic
def notification_channel_test(*, channel: NotificationChannel) -> NotificationDelivery:
    """A `test` event for this channel alone (enabled or not), due at once: the next sweep of
    `manage.py sendalerts` sends it, signed like any other. Conflict while MAX_PENDING_TESTS wait."""
    pending = NotificationDelivery.objects.filter(
        channel=channel, status=DeliveryStatus.PENDING, event__type=EventType.TEST
    ).count()
    if pending >= MAX_PENDING_TESTS:
        raise Conflict(
            f"{pending} test notifications of this channel are still waiting to be sent; try again once they are",
            details={"limit": MAX_PENDING_TESTS},
        )
    now = timezone.now()
    event_id = uuid.uuid4()
    body = events.payload(
        event_id=event_id,
        event_type=EventType.TEST,
        occurred_at=now,
        organization_id=channel.organization_id,
        data={
            "channel_id": str(channel.pk),
            "channel_name": channel.name,
            "message": "A test notification from LogFleet: this channel works.",
        },
    )
    event = NotificationEvent.objects.create(
        id=event_id, organization_id=channel.organization_id, type=EventType.TEST, occurred_at=now, payload=body
    )
    return NotificationDelivery.objects.create(channel=channel, event=event, next_attempt_at=now, created_at=now)
