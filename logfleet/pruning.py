"""Deleting old rows in short transactions, so that a prune from cron never holds a table long."""

from django.db import transaction


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
