"""A mixed workload against two server processes sharing the database and Redis.

Heartbeats of 1 000 agents (their 30 s rhythm compressed), metric pushes with batch ids,
dashboard reads and one live stream, from several client threads in a separate process, for a
fixed time, against Daphne and then Uvicorn. Prints throughput and p50/p99 per endpoint group and
the errors, then checks that every acknowledged sample is in the database exactly once.
"""

import json
import threading
import time
import uuid
from collections import defaultdict

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import Organization, Role, User
from accounts.services import session_start
from agents import services as agent_services
from agents.models import Agent
from apikeys import services as key_services
from bench import loadgen
from bench.live import LiveServer, http_json
from metrics.models import Sample, Series

GROUPS = (
    ("heartbeat", "/heartbeat"),
    ("metrics push", "/metrics"),
    ("stream push", "/stream"),
    ("dashboard", "/api/v1/"),
)


def group_of(path: str) -> str:
    if path.startswith("/api/v1/edge/"):
        for name, suffix in GROUPS[:3]:
            if path.endswith(suffix):
                return name
    return "dashboard"


class Command(BaseCommand):
    help = "Mixed load (heartbeats, metric pushes, dashboard reads, a live stream) on two processes; Daphne vs Uvicorn."

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=float, default=15.0, help="seconds per server kind (default 15)")
        parser.add_argument("--agents", type=int, default=1000)
        parser.add_argument("--servers", default="daphne,uvicorn", help="comma-separated: daphne, uvicorn")

    def handle(self, *args, **options):
        if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            raise CommandError("bench_load runs on PostgreSQL + Redis: set DATABASE_URL and REDIS_URL")
        call_command("migrate", verbosity=0)
        organization = Organization.objects.create(name="load", slug=f"load-{uuid.uuid4().hex[:8]}")
        try:
            rows = [self._run(kind, organization, options) for kind in options["servers"].split(",")]
        finally:
            Sample.objects.filter(series__organization=organization).delete()
            organization.delete()
        self._report(rows)

    def _setup(self, organization, count):
        user = User.objects.create_user(
            email=f"{organization.slug}-{uuid.uuid4().hex[:4]}@bench.invalid",
            password=None,
            name="load",
            organization=organization,
            role=Role.ADMIN,
        )
        _key, raw = key_services.api_key_create(
            organization=organization,
            name="load",
            permissions=["edge:heartbeat", "edge:metrics", "edge:stream"],
            actor=key_services.Actor(),
        )
        agents = Agent.objects.bulk_create(
            [Agent(organization=organization, name=f"load-{uuid.uuid4().hex[:10]}") for _ in range(count)]
        )
        agent_services.agents_refresh_config_hash(organization_id=organization.pk)
        Agent.objects.filter(pk=agents[0].pk).update(last_heartbeat_at=timezone.now(), reported_status="online")
        return session_start(user=user).token, raw, [str(agent.pk) for agent in agents]

    def _run(self, kind, organization, options):
        token, raw_key, agent_ids = self._setup(organization, options["agents"])
        env = {
            "SECRET_KEY": settings.SECRET_KEY,
            "LOG_LEVEL": "WARNING",
            "STREAM_MAX_LINES_PER_SECOND": "100000",
            **{f"LOGFLEET_RATE_{g}": "100000000/m" for g in ("AUTH", "DASHBOARD", "AGENTS", "EDGE", "STREAMING")},
        }
        servers = [LiveServer(env, access_log=False, server=kind) for _ in range(2)]
        key = {"X-API-Key": raw_key}
        bearer = {"Authorization": f"Bearer {token}"}
        try:
            status, started = http_json(
                f"{servers[0].url}/api/v1/stream/start", {"agent_id": agent_ids[0], "timeout_seconds": 3600}, bearer
            )
            if status != 201:
                raise CommandError(f"could not start the stream: {started}")
            clients = self._clients(agent_ids, key, bearer, started["session_id"])
            # Each client thread talks to one process, alternating between the two.
            per_server = [[c for i, c in enumerate(clients) if i % 2 == n] for n in range(2)]
            started_at = time.monotonic()
            results = []

            def drive(server, client_lists):
                out, _errors = loadgen.run(server.url, client_lists, options["duration"])
                results.extend(out)

            viewer = {"frames": 0}
            watcher = threading.Thread(
                target=self._watch, args=(f"{started['websocket_url']}?token={token}", options["duration"] + 3, viewer)
            )
            watcher.start()
            threads = [threading.Thread(target=drive, args=(servers[n], per_server[n])) for n in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started_at
            watcher.join()
            time.sleep(2)  # the heartbeat writers flush
        finally:
            for server in servers:
                server.stop()
        pushed = sum(
            json.loads(p)["accepted"] for _l, status, p, path in results if status == 202 and path.endswith("/stream")
        )
        verdict = self._verify(organization, results)
        return kind, elapsed, results, f"{verdict}; the viewer got {viewer['frames']} of {pushed} streamed lines"

    @staticmethod
    def _watch(url: str, seconds: float, counter: dict) -> None:
        """The live stream's viewer, on the first process, counting the log frames it receives."""
        import asyncio

        import websockets

        async def watch():
            async with websockets.connect(url, max_size=2**22) as ws:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    except TimeoutError:
                        continue
                    if frame.get("type") == "log":
                        counter["frames"] += 1

        asyncio.run(watch())

    def _clients(self, agent_ids, key, bearer, session_id):
        now = time.time()
        heartbeats = [
            [
                loadgen.json_request(
                    "POST",
                    f"/api/v1/edge/agents/{agent_id}/heartbeat",
                    {"status": "online", "metrics": {"cpu": 10}},
                    key,
                )
                for agent_id in agent_ids[offset::4]
            ]
            for offset in range(4)
        ]
        pushes = [
            [
                loadgen.json_request(
                    "POST",
                    f"/api/v1/edge/agents/{agent_ids[(n * 7 + k) % len(agent_ids)]}/metrics",
                    {
                        "batch_id": uuid.uuid4().hex,
                        "samples": [
                            {
                                "name": "load_requests_total",
                                "type": "counter",
                                "labels": {"i": str(i)},
                                "timestamp": now,
                                "value": 1,
                            }
                            for i in range(500)
                        ],
                    },
                    key,
                )
                for k in range(300)
            ]
            for n in range(2)
        ]
        end = int(now) + 60
        reads = [
            "/api/v1/dashboard/summary",
            "/api/v1/agents?page_size=50&ordering=-last_heartbeat_at",
            f"/api/v1/metrics/query?name=load_requests_total&start={end - 3600}&end={end}&step=60",
        ]
        dashboard = [[("GET", path, b"", bearer) for path in reads] for _ in range(2)]
        lines = [
            {
                "timestamp": "2024-01-15T10:30:00Z",
                "level": "INFO",
                "message": f"line {i}",
                "source": "app",
                "metadata": {},
            }
            for i in range(20)
        ]
        stream = [
            [
                loadgen.json_request(
                    "POST", f"/api/v1/edge/agents/{agent_ids[0]}/stream", {"session_id": session_id, "logs": lines}, key
                )
            ]
        ]
        return [*heartbeats, *pushes, *dashboard, *stream]

    def _verify(self, organization, results) -> str:
        acknowledged = 0
        for _latency, status, payload, path in results:
            if status == 202 and path.endswith("/metrics"):
                body = json.loads(payload)
                if not body["duplicate"]:
                    acknowledged += body["accepted"]
        stored = Sample.objects.filter(series__in=Series.objects.filter(organization=organization)).count()
        Sample.objects.filter(series__organization=organization).delete()
        return f"acknowledged {acknowledged} samples, stored {stored}: " + (
            "exactly once" if stored == acknowledged else "MISMATCH"
        )

    def _report(self, rows):
        self.stdout.write("")
        self.stdout.write(f"{'server':8} {'group':14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for kind, elapsed, results, verdict in rows:
            by_group = defaultdict(list)
            errors = defaultdict(int)
            for latency, status, _payload, path in results:
                group = group_of(path)
                by_group[group].append(latency * 1000)
                if status >= 400:
                    errors[group] += 1
            for group in ("heartbeat", "metrics push", "stream push", "dashboard"):
                values = by_group.get(group, [])
                self.stdout.write(
                    f"{kind:8} {group:14} {len(values) / elapsed:8.0f} {loadgen.percentile(values, 0.5):8.1f} "
                    f"{loadgen.percentile(values, 0.99):8.1f} {errors[group]:7}"
                )
            total = sum(len(v) for v in by_group.values())
            self.stdout.write(f"{kind:8} {'all':14} {total / elapsed:8.0f}    {verdict}")
        self.stdout.write("")
