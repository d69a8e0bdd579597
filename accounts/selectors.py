"""Reads of accounts: an organization's members and its audit log, in their documented orders.

Plain keyword arguments in, querysets out: the API's views and the dashboard's pages call the same ones.
"""

from datetime import datetime

from django.db.models import QuerySet

from accounts.models import AuditEvent, User


def member_list(*, organization_id) -> QuerySet[User]:
    """The organization's people, oldest first."""
    return User.objects.filter(organization_id=organization_id).order_by("created_at", "id")


def audit_event_list(
    *, organization_id, action: str | None = None, actor_id=None, since: datetime | None = None
) -> QuerySet[AuditEvent]:
    """The organization's audit events, newest first: of one exact action, by one actor, at or after `since`."""
    queryset = AuditEvent.objects.filter(organization_id=organization_id).order_by("-created_at", "-id")
    if action:
        queryset = queryset.filter(action=action)
    if actor_id is not None:
        queryset = queryset.filter(actor_id=actor_id)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    return queryset
