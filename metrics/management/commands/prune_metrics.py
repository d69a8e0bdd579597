from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from logfleet import clock
from logfleet.pruning import retention_error
from metrics import partitions
from metrics.models import MetricBatch, Rollup, Sample


def prune(*, older_than_days: int, chunk_size: int = 10_000, dry_run: bool = False) -> dict:
    """Delete samples (their rollups, and remembered batch ids) older than the retention.

    On PostgreSQL the samples of each day wholly older than the retention go at once: their day's
    partition is dropped (so a sample is kept until its whole UTC day is past the retention, up to a
    day longer than on SQLite), and the partitions of the days ahead are made. Elsewhere the
    samples are deleted a chunk at a time, each chunk its own short transaction, so the table is
    never locked for long and the command can run from cron next to live ingestion.
    """
    cutoff_ms = int((clock.unix() - older_than_days * 86400) * 1000)
    if partitions.partitioned():
        boundary_ms = cutoff_ms // partitions.DAY_MS * partitions.DAY_MS
        doomed = partitions.partitions_before(boundary_ms)
        samples = sum(partitions.partition_rows(name) for name in doomed.values())
    else:
        boundary_ms, doomed = cutoff_ms, {}
        samples = None
    old_batches = MetricBatch.objects.filter(received_at__lt=_cutoff_datetime(older_than_days))
    if dry_run:
        if samples is None:
            samples = Sample.objects.filter(ts__lt=cutoff_ms).count()
        return {"samples": samples, "batches": old_batches.count(), "chunks": 0, "partitions": len(doomed)}
    chunks = 0
    if partitions.partitioned():
        for day, name in sorted(doomed.items()):
            partitions.partition_drop(day, name)
        partitions.partitions_ensure_ahead()
    else:
        old = Sample.objects.filter(ts__lt=cutoff_ms)
        samples = 0
        while True:
            with transaction.atomic():
                ids = list(old.order_by().values_list("id", flat=True)[:chunk_size])
                if not ids:
                    break
                samples += Sample.objects.filter(id__in=ids).delete()[0]
            chunks += 1
    Rollup.objects.filter(minute__lt=boundary_ms // 1000).delete()
    batches = old_batches.delete()[0]
    return {"samples": samples, "batches": batches, "chunks": chunks, "partitions": len(doomed)}


def _cutoff_datetime(days: int):
    # Batch ids are kept at least as long as samples, and at least the 7 days an agent may replay.
    return timezone.now() - timedelta(days=max(days, 8))


class Command(BaseCommand):
    help = (
        "Delete metric samples older than METRICS_RETENTION_DAYS (or --older-than-days): on PostgreSQL by dropping "
        "the day partitions wholly past it (and making the partitions of the days ahead), elsewhere in chunks of "
        "short transactions. Safe to run from cron while agents push."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-days",
            type=int,
            default=None,
            help=f"retention in days (default METRICS_RETENTION_DAYS={settings.METRICS_RETENTION_DAYS})",
        )
        parser.add_argument(
            "--chunk-size", type=int, default=10_000, help="samples per transaction where they are deleted in chunks"
        )
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args, **options):
        days = options["older_than_days"] if options["older_than_days"] is not None else settings.METRICS_RETENTION_DAYS
        error = retention_error(days)
        if error is not None:
            raise CommandError(error)
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1")
        result = prune(older_than_days=days, chunk_size=options["chunk_size"], dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        message = f"{verb} {result['samples']} samples older than {days} days"
        message += f" and {result['batches']} remembered batch ids"
        if partitions.partitioned():
            message += f" in {result['partitions']} day partition(s)"
        elif not options["dry_run"]:
            message += f" in {result['chunks']} chunk(s)"
        self.stdout.write(self.style.SUCCESS(message))
