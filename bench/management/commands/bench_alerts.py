"""Benchmark of `manage.py sendalerts`: sweeps over a fleet and deliveries to a local receiver.

A fleet of --agents agents (10 000) online, one webhook channel for every event and agent, and a
receiver on 127.0.0.1 (bench/receiver.py). Measured on the configured database:
1. the first sweep, which records every agent's state (nothing announced);
2. a sweep that finds nothing (median of 5): the cost of watching the fleet every ALERT_SWEEP_SECONDS;
3. a sweep that finds --transitions (1 000) agents gone silent: their events and deliveries written;
4. sending those deliveries with 8 sender threads (deliveries/s);
5. the same agents back online: the sweep, then sending with 1 sender thread;
6. offline again, sent with 8 threads to a receiver that takes 20 ms an answer (as one across a
   network would): on 127.0.0.1 the threads only share one interpreter, there they wait in parallel.
Every delivery must end `delivered`, once. Deletes what it created.
"""

import statistics
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from accounts.models import Organization
from agents.models import Agent, AgentStatus, DeliveryStatus, NotificationDelivery
from agents.notifications import services
from agents.notifications.delivery import deliver_due
from agents.notifications.sweep import sweep
from bench.receiver import Receiver


class Command(BaseCommand):
    help = "Benchmark sendalerts: time per sweep over a fleet and deliveries per second to a local receiver."

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=10_000, help="agents in the fleet (default 10000)")
        parser.add_argument("--transitions", type=int, default=1_000, help="agents that go silent (default 1000)")

    def handle(self, *args, **options):
        if not 1 <= options["transitions"] <= options["agents"]:
            raise CommandError("--transitions must be between 1 and --agents")
        call_command("migrate", verbosity=0)
        # The receiver listens on 127.0.0.1, a loopback address the SSRF guard refuses by default.
        settings.WEBHOOK_ALLOW_PRIVATE = True
        organization = Organization.objects.create(name="bench alerts", slug=f"bench-alerts-{uuid.uuid4().hex[:8]}")
        receiver = Receiver(record=False)
        try:
            rows = self._run(organization, receiver, options)
        finally:
            receiver.stop()
            self.stdout.write("cleaning up ...")
            organization.delete()
        self._report(rows, options)

    def _run(self, organization, receiver, options):
        agents, transitions = options["agents"], options["transitions"]
        now = timezone.now()
        self.stdout.write(f"creating {agents} agents ...")
        Agent.objects.bulk_create(
            [
                Agent(
                    organization=organization,
                    name=f"bench-{i:05d}",
                    labels={"env": "prod", "shard": str(i % 10)},
                    reported_status=AgentStatus.ONLINE,
                    last_heartbeat_at=now,
                    config_hash="0" * 64,
                )
                for i in range(agents)
            ],
            batch_size=2000,
        )
        services.notification_channel_create(
            organization=organization,
            actor=None,
            name="bench",
            kind="webhook",
            url=f"{receiver.url}/hook",
            events=["agent.offline", "agent.online"],
        )
        rows = []

        started = time.perf_counter()
        first = sweep()
        rows.append(("first sweep (records every agent)", time.perf_counter() - started, first.baselined, ""))
        assert first.baselined == agents and first.events == 0, first

        idle = []
        for _ in range(5):
            started = time.perf_counter()
            result = sweep()
            idle.append(time.perf_counter() - started)
            assert result.events == 0, result
        rows.append(("sweep, nothing to announce (median of 5)", statistics.median(idle), 0, ""))

        silent = list(
            Agent.objects.filter(organization=organization).order_by("name").values_list("pk", flat=True)[:transitions]
        )
        Agent.objects.filter(pk__in=silent).update(
            last_heartbeat_at=timezone.now() - timedelta(seconds=settings.AGENT_OFFLINE_AFTER + 10)
        )
        rows += self._round("offline", organization, transitions, workers=8)

        Agent.objects.filter(pk__in=silent).update(last_heartbeat_at=timezone.now())
        rows += self._round("back online", organization, transitions, workers=1)

        # A receiver across a network: each answer takes 20 ms. The sender's threads wait in parallel.
        receiver.delay = 0.02
        Agent.objects.filter(pk__in=silent).update(
            last_heartbeat_at=timezone.now() - timedelta(seconds=settings.AGENT_OFFLINE_AFTER + 10)
        )
        rows += self._round("offline again", organization, transitions, workers=8, note=", 20 ms answers")
        if receiver.count != 3 * transitions:
            raise CommandError(f"the receiver got {receiver.count} requests, not {3 * transitions}")
        return rows

    def _round(self, what: str, organization, transitions: int, *, workers: int, note: str = ""):
        started = time.perf_counter()
        found = sweep()
        swept = time.perf_counter() - started
        if (found.transitions, found.events, found.deliveries) != (transitions,) * 3:
            raise CommandError(f"expected {transitions} transitions, events and deliveries: {found}")
        sent = deliver_due(workers=workers)
        delivered = NotificationDelivery.objects.filter(
            channel__organization=organization, status=DeliveryStatus.DELIVERED
        ).count()
        if sent.delivered != transitions or delivered % transitions:
            raise CommandError(f"not every delivery was delivered once: {sent}")
        return [
            (f"sweep, {transitions} agents {what}", swept, transitions, ""),
            (
                f"send {transitions} webhooks, {workers} thread{'s' if workers > 1 else ''}{note}",
                sent.seconds,
                sent.sent,
                sent.sent / sent.seconds,
            ),
        ]

    def _report(self, rows, options):
        self.stdout.write("")
        self.stdout.write(f"database {connection.vendor}; {options['agents']} agents, one webhook channel")
        self.stdout.write(f"{'measurement':44} {'time ms':>10} {'count':>7} {'per second':>11}")
        for name, seconds, count, rate in rows:
            rate = f"{rate:11.0f}" if rate != "" else " " * 11
            self.stdout.write(f"{name:44} {seconds * 1000:10.1f} {count:7d} {rate}")
