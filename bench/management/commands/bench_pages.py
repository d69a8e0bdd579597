"""Benchmark of the dashboard's pages on a big fleet: server time per page.

An organization of 1 000 agents (mixed status, labels, configs) and 10 000 series (10 per agent,
each with an hour of samples at one a minute), with 20 notification channels and a week of their
deliveries (10 000, 1 in 50 failed and a few pending), is created in the configured database; each page
is rendered `--runs` times in-process by Django's full request path (middleware, session,
selectors, templates) as a signed-in admin, and p50/p95 server time is printed per page
(target: p95 < 100 ms). Deletes what it created.
"""

import statistics
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from accounts.browser import SESSION_KEY
from accounts.models import Organization, Role, User
from accounts.services import session_start
from agents.models import (
    SUBSCRIBABLE_EVENTS,
    Agent,
    ChannelKind,
    DeliveryStatus,
    EventType,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from agents.notifications import secrets
from metrics.models import Sample, Series

TARGET_P95_MS = 100


class Command(BaseCommand):
    help = (
        "Server time p50/p95 of /, /agents, /agents/<id>, /metrics and /notifications on a fleet of 1 000 agents; "
        "prints a table."
    )

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=1000)
        parser.add_argument("--series-per-agent", type=int, default=10)
        parser.add_argument("--channels", type=int, default=20, help="notification channels (default 20)")
        parser.add_argument("--deliveries", type=int, default=10_000, help="their deliveries (default 10 000)")
        parser.add_argument("--runs", type=int, default=40, help="renders per page (default 40)")

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0)
        organization = Organization.objects.create(name="Bench fleet", slug=f"bench-{uuid.uuid4().hex[:8]}")
        try:
            self._run(organization, options)
        finally:
            self.stdout.write("cleaning up ...")
            Sample.objects.filter(series__organization=organization).delete()
            organization.delete()

    def _fleet(self, organization, agents: int, per_agent: int) -> tuple[Agent, str]:
        now = timezone.now()
        regions, roles = ("eu-west", "us-east", "ap-south"), ("web", "db", "cache", "edge")
        rows = []
        for i in range(agents):
            online = i % 10 < 7
            rows.append(
                Agent(
                    organization=organization,
                    name=f"edge-{i:04d}",
                    hostname=f"edge-{i:04d}.fleet.internal",
                    version="1.4.2",
                    labels={"region": regions[i % 3], "role": roles[i % 4], "rack": str(i % 40)},
                    reported_status="error" if i % 50 == 0 else "online",
                    last_heartbeat_at=now - (timedelta(seconds=10) if online else timedelta(hours=2)),
                    registered_at=now - timedelta(days=3),
                    system_metrics={"cpu_percent": 12.5, "memory_percent": 40.1, "disk_percent": 55.0},
                )
            )
        with transaction.atomic():
            Agent.objects.bulk_create(rows, batch_size=500)
        agents_list = list(Agent.objects.filter(organization=organization).order_by("name"))
        names = [f"http_requests_total_{n}" for n in range(per_agent)]
        series = [
            Series(
                organization=organization,
                agent=agent,
                name=name,
                type="counter",
                labels={"status": "200"},
                labels_hash=uuid.uuid4().hex,
                last_sample_at=now,
                total=1000.0,
                last_value=1.0,
            )
            for agent in agents_list
            for name in names
        ]
        with transaction.atomic():
            Series.objects.bulk_create(series, batch_size=1000)
        # An hour of samples, one a minute, for the agent whose page is measured and for the first
        # metric of every agent (what /metrics charts by default): 60 x (10 + 1 000) rows.
        start = int(now.timestamp()) // 60 * 60 - 3600
        measured = agents_list[1]
        charted = Series.objects.filter(organization=organization).filter(agent=measured) | Series.objects.filter(
            organization=organization, name=names[0]
        )
        samples = [
            Sample(series_id=series_id, ts=start + minute * 60, value=float(minute % 7))
            for series_id in charted.values_list("id", flat=True)
            for minute in range(60)
        ]
        with transaction.atomic():
            Sample.objects.bulk_create(samples, batch_size=5000)
        return measured, names[0], agents_list

    def _notifications(self, organization, agents: list[Agent], channels: int, deliveries: int) -> NotificationChannel:
        """`channels` channels (webhooks and email, some narrowed by labels) and `deliveries` deliveries
        of agent events spread over a week, newest last; returns the busiest channel."""
        now = timezone.now()
        secret = secrets.encrypt(secrets.generate())
        made = NotificationChannel.objects.bulk_create(
            [
                NotificationChannel(
                    organization=organization,
                    name=f"channel-{n:02d}",
                    kind=ChannelKind.EMAIL if n % 4 == 3 else ChannelKind.WEBHOOK,
                    url="" if n % 4 == 3 else f"https://hooks.example.com/logfleet/{n}",
                    email=f"ops-{n}@example.com" if n % 4 == 3 else "",
                    events=list(SUBSCRIBABLE_EVENTS),
                    agent_selector={"region": ("eu-west", "us-east", "ap-south")[n % 3]} if n % 2 else {},
                    secret_encrypted="" if n % 4 == 3 else secret,
                )
                for n in range(channels)
            ]
        )
        step = timedelta(days=7) / max(1, deliveries)
        event_rows, delivery_rows = [], []
        for i in range(deliveries):
            agent = agents[i % len(agents)]
            at = now - timedelta(days=7) + step * i
            event_type = EventType.AGENT_OFFLINE if i % 2 else EventType.AGENT_ONLINE
            event = NotificationEvent(
                organization=organization,
                type=event_type,
                occurred_at=at,
                agent=agent,
                payload={"type": event_type, "agent": {"id": str(agent.pk), "name": agent.name}, "data": {}},
            )
            failed, pending = i % 50 == 0, i >= deliveries - 3
            status = DeliveryStatus.FAILED if failed else DeliveryStatus.DELIVERED
            status = DeliveryStatus.PENDING if pending else status
            event_rows.append(event)
            delivery_rows.append(
                NotificationDelivery(
                    channel=made[i % len(made)],
                    event=event,
                    status=status,
                    attempts=0 if pending else 12 if failed else 1,
                    created_at=at,
                    last_attempt_at=None if pending else at,
                    next_attempt_at=at if pending else None,
                    delivered_at=at if status == DeliveryStatus.DELIVERED else None,
                    response_status=None if pending else 500 if failed else 204,
                    error="HTTP 500" if failed else "",
                )
            )
        with transaction.atomic():
            NotificationEvent.objects.bulk_create(event_rows, batch_size=2000)
            NotificationDelivery.objects.bulk_create(delivery_rows, batch_size=2000)
        return made[0]

    def _client(self, organization) -> Client:
        user = User.objects.create_user(
            email=f"{organization.slug}@bench.invalid",
            password=None,
            name="Bench admin",
            organization=organization,
            role=Role.ADMIN,
        )
        store = SessionStore()
        store[SESSION_KEY] = session_start(user=user).session_id
        store.create()
        client = Client(SERVER_NAME="localhost", HTTP_ACCEPT="text/html")
        client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
        return client

    def _run(self, organization, options):
        started = time.perf_counter()
        agent, metric, agents = self._fleet(organization, options["agents"], options["series_per_agent"])
        channel = self._notifications(organization, agents, options["channels"], options["deliveries"])
        self.stdout.write(
            f"fleet: {options['agents']} agents, {options['agents'] * options['series_per_agent']} series, "
            f"{options['channels']} notification channels and {options['deliveries']} deliveries "
            f"in {time.perf_counter() - started:.1f} s ({connection.vendor})"
        )
        client = self._client(organization)
        pages = [
            ("/", "/"),
            ("/agents", "/agents"),
            ("/agents?status=offline&label=region:eu-west&ordering=-last_heartbeat_at", "/agents (filtered, sorted)"),
            ("/agents (htmx refresh)", "/agents (htmx table refresh)"),
            (f"/agents/{agent.pk}", "/agents/<id>"),
            (f"/metrics/panel?agent_id={agent.pk}", "/metrics/panel (agent charts)"),
            ("/metrics", "/metrics"),
            (f"/metrics?name={metric}&range=1h&aggregation=sum", "/metrics (a chart)"),
            ("/notifications", "/notifications"),
            (f"/notifications?channel={channel.pk}&page=3", "/notifications (a channel, page 3)"),
            ("/notifications (htmx refresh)", "/notifications/deliveries (htmx refresh)"),
        ]
        header = f"{'page':<44} {'status':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
        self.stdout.write(f"\n{header}  target p95 < {TARGET_P95_MS}")
        for path, label in pages:
            headers = {}
            if path == "/agents (htmx refresh)":
                path, headers = "/agents", {"HTTP_HX_REQUEST": "true"}
            elif path == "/notifications (htmx refresh)":
                path, headers = "/notifications/deliveries", {"HTTP_HX_REQUEST": "true"}
            client.get(path, **headers)  # warm: templates compiled, caches filled
            times = []
            for _ in range(options["runs"]):
                begin = time.perf_counter()
                response = client.get(path, **headers)
                times.append((time.perf_counter() - begin) * 1000)
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            verdict = "ok" if p95 < TARGET_P95_MS and response.status_code == 200 else "OVER"
            self.stdout.write(
                f"{label:<44} {response.status_code:>6} {statistics.median(times):>8.1f} {p95:>8.1f} "
                f"{times[-1]:>8.1f}  {verdict}"
            )
