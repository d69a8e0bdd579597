"""Reads of API keys: an organization's keys, newest first, by status as of now.

Plain keyword arguments in, querysets out: the API's views and the dashboard's pages call the same ones.
"""

from datetime import datetime

from django.db.models import QuerySet

from apikeys.models import APIKey


def api_key_list(*, organization_id, status: str | None = None, now: datetime | None = None) -> QuerySet[APIKey]:
    """The organization's keys, newest first; only those `status` (active, expired, revoked) as of `now`."""
    queryset = APIKey.objects.filter(organization_id=organization_id).order_by("-created_at", "-id")
    if status:
        queryset = queryset.with_status(status, now)
    return queryset
