"""Reads of API keys that the API and the dashboard share."""

from django.db.models import Exists, OuterRef, QuerySet

from apikeys.models import APIKey


def api_key_list(*, organization_id, status: str | None = None) -> QuerySet[APIKey]:
    """An organization's keys, newest first (ties broken by id), of one status when given.

    Each key carries `rotated`: a newer key replaces it (while it is still active, it works only
    until its grace period ends)."""
    keys = APIKey.objects.filter(organization_id=organization_id)
    if status:
        keys = keys.with_status(status)
    return keys.annotate(rotated=Exists(APIKey.objects.filter(replaces_id=OuterRef("pk")))).order_by(
        "-created_at", "-id"
    )
