import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

from agents.notifications.delivery import DEFAULT_WORKERS, deliver_due
from agents.notifications.sweep import sweep

logger = logging.getLogger("logfleet.notifications")


class Command(BaseCommand):
    help = (
        "Send notifications: every ALERT_SWEEP_SECONDS, find agent transitions (offline, back online, error, "
        "config failed) and expiring API keys, and deliver them to the matching channels (signed webhooks, email), "
        "retrying failed attempts for 24 h. Any number may run at once on PostgreSQL: each event is sent once. "
        "--once runs one sweep and exits (cron, tests)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one sweep and its deliveries, then exit")
        parser.add_argument(
            "--interval",
            type=int,
            default=None,
            help=f"seconds between sweeps (default ALERT_SWEEP_SECONDS={settings.ALERT_SWEEP_SECONDS})",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=DEFAULT_WORKERS,
            help=f"deliveries sent at once (threads; default {DEFAULT_WORKERS})",
        )

    def handle(self, *args, **options):
        interval = options["interval"] if options["interval"] is not None else settings.ALERT_SWEEP_SECONDS
        workers = options["workers"]
        if interval < 1:
            raise CommandError("--interval must be at least 1 second")
        if not 1 <= workers <= 64:
            raise CommandError("--workers must be between 1 and 64")
        if options["once"]:
            self._report(*self._cycle(workers))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"sendalerts: sweeping every {interval} s with {workers} sender threads")
        while not stop.is_set():
            started = time.monotonic()
            close_old_connections()  # a connection the database dropped (a restart) is opened anew
            try:
                found, sent = self._cycle(workers)
            except DatabaseError as exc:  # the database restarts or is unreachable: try again next sweep
                logger.warning("sendalerts: sweep failed, retrying in %d s: %s", interval, exc)
                close_old_connections()
            else:
                if found.events or sent.sent:
                    self._report(found, sent)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
        self.stdout.write("sendalerts: stopped")

    def _cycle(self, workers: int):
        found = sweep()
        return found, deliver_due(workers=workers)

    def _report(self, found, sent) -> None:
        self.stdout.write(
            f"{found.transitions} transitions ({found.baselined} agents seen first), {found.events} events, "
            f"{found.deliveries} deliveries; sent {sent.sent}: {sent.delivered} delivered, "
            f"{sent.retrying} to retry, {sent.failed} failed"
        )
