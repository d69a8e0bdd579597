from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import AuditEvent
from logfleet.pruning import delete_in_chunks, retention_error
from streaming.models import StreamSession


class Command(BaseCommand):
    help = (
        "Delete audit events and stream sessions older than HISTORY_RETENTION_DAYS (or --older-than-days), "
        "in short transactions. Safe to run from cron."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-days",
            type=int,
            default=None,
            help=f"retention in days (default HISTORY_RETENTION_DAYS={settings.HISTORY_RETENTION_DAYS})",
        )
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args, **options):
        days = options["older_than_days"]
        days = settings.HISTORY_RETENTION_DAYS if days is None else days
        error = retention_error(days)
        if error is not None:
            raise CommandError(error)
        cutoff = timezone.now() - timedelta(days=days)
        old = {
            "audit events": AuditEvent.objects.filter(created_at__lt=cutoff),
            # A session lasts at most an hour past its start: one whose timeout is this old is over.
            "stream sessions": StreamSession.objects.filter(expires_at__lt=cutoff),
        }
        for what, queryset in old.items():
            count = queryset.count() if options["dry_run"] else delete_in_chunks(queryset)
            verb = "would delete" if options["dry_run"] else "deleted"
            self.stdout.write(f"{verb} {count} {what} older than {days} days")
