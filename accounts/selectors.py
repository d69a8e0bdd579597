"""Reads of the accounts app that the API and the dashboard share: one function each, so a list is
scoped, filtered and ordered the same way wherever it is shown."""

import uuid
from datetime import datetime

from django.db.models import QuerySet

from accounts.models import AuditEvent, User


def member_list(*, organization_id) -> QuerySet[User]:
    """An organization's people, oldest first (ties broken by id)."""
    return User.objects.filter(organization_id=organization_id).order_by("created_at", "id")


def audit_event_list(
    *,
    organization_id,
    action: str | None = None,
    actor: uuid.UUID | str | None = None,
    since: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """An organization's audit events, newest first (ties broken by id).

    `actor` is an actor's id (a user's, or an API key's: what the API's filter takes) or an email
    (what a person knows the others by); an event keeps both as they were, also after the user
    is deleted."""
    events = AuditEvent.objects.filter(organization_id=organization_id)
    if action:
        events = events.filter(action=action)
    if isinstance(actor, uuid.UUID):
        events = events.filter(actor_id=actor)
    elif actor:
        events = events.filter(actor_email=actor.lower())
    if since is not None:
        events = events.filter(created_at__gte=since)
    return events.order_by("-created_at", "-id")
