"""Deleting old rows in short transactions, so that a prune from cron never holds a table long."""

from django.db import transaction

# Retentions in days: a century, and far from where "now minus the retention" leaves the dates
# Python and the databases hold (year 1).
MAX_RETENTION_DAYS = 36_500


def retention_error(days: int) -> str | None:
    """Why a retention (a command's --older-than-days, or its default setting) is refused, or None."""
    if not 1 <= days <= MAX_RETENTION_DAYS:
        return f"--older-than-days (or its setting) must be at least 1 and at most {MAX_RETENTION_DAYS}, not {days}"
    return None


def delete_in_chunks(queryset, *, chunk_size: int = 10_000) -> int:
    """Delete every row of `queryset`, `chunk_size` at a time; how many were deleted."""
    model = queryset.model
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(queryset.order_by().values_list("pk", flat=True)[:chunk_size])
            if not ids:
                return deleted
            deleted += model.objects.filter(pk__in=ids).delete()[0]
