"""Benchmark of live streaming: an agent pushing lines at a fixed rate, viewers on WebSockets.

Scenarios: one process with the in-memory channel layer, and (with REDIS_URL) two processes
sharing Redis, the viewers on one and the agent pushing to the other. Each prints delivered
lines/s, dropped lines and push-to-viewer latency; a bare Redis publish → subscribe round trip
is measured in the same run for scale.
"""

import time
import uuid

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.models import Organization, User
from accounts.services import session_start
from agents.models import Agent
from apikeys import services as key_services
from bench import loadgen
from bench.live import LiveServer, http_json

SCENARIOS = [(1, 500), (10, 500), (2, 2000)]


class Command(BaseCommand):
    help = "Benchmark stream fan-out (push → viewer latency, delivered lines/s) on one and two processes."

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=float, default=5.0, help="seconds of pushing per scenario")

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0)
        organization = Organization.objects.create(name="bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
        try:
            rows = self._run(organization, options["duration"])
        finally:
            organization.delete()
        self._report(rows)

    def _run(self, organization, duration):
        _key, raw = key_services.api_key_create(
            organization=organization,
            name="bench",
            permissions=["edge:stream", "edge:heartbeat"],
            actor=key_services.Actor(),
        )
        user = User.objects.create_user(
            email=f"{organization.slug}@bench.invalid", password=None, name="bench", organization=organization
        )
        token = session_start(user=user).token
        agent = Agent.objects.create(organization=organization, name="bench-agent")
        env = {
            "SECRET_KEY": settings.SECRET_KEY,
            "LOGFLEET_RATE_STREAMING": "100000/m",
            "LOGFLEET_RATE_EDGE": "10000000/m",
            "STREAM_MAX_LINES_PER_SECOND": "2000",
            "LOG_LEVEL": "WARNING",
        }
        rows = []
        setups = [("1 process, in-memory layer", False)]
        if settings.REDIS_URL:
            setups.append(("2 processes, Redis layer", True))
        else:
            self.stdout.write("REDIS_URL is not set: only the one-process scenarios run")
        for label, redis in setups:
            servers = [LiveServer(env, access_log=False, redis=redis)]
            if redis:
                servers.append(LiveServer(env, access_log=False, redis=True))
            try:
                for viewers, rate in SCENARIOS:
                    rows.append(
                        (label, viewers, rate, self._scenario(servers, raw, token, agent, viewers, rate, duration))
                    )
            finally:
                for server in servers:
                    server.stop()
        if settings.REDIS_URL:
            rows.append(("bare Redis publish -> subscribe", 1, 0, self._redis_round_trip()))
        return rows

    def _scenario(self, servers, raw_key, token, agent, viewers, rate, duration):
        viewer_side, agent_side = servers[0], servers[-1]
        headers = {"X-API-Key": raw_key}
        status, _ = http_json(
            f"{agent_side.url}/api/v1/edge/agents/{agent.pk}/heartbeat", {"status": "online"}, headers
        )
        assert status == 200
        deadline = time.monotonic() + 10  # heartbeats are written by the server's writer, about once a second
        while Agent.objects.with_status().get(pk=agent.pk).status != "online" and time.monotonic() < deadline:
            time.sleep(0.1)
        status, started = http_json(
            f"{viewer_side.url}/api/v1/stream/start",
            {"agent_id": str(agent.pk), "timeout_seconds": 600},
            {"Authorization": f"Bearer {token}"},
        )
        assert status == 201, started
        try:
            return loadgen.run_stream_scenario(
                f"{started['websocket_url']}?token={token}",
                viewers,
                f"{agent_side.url}/api/v1/edge/agents/{agent.pk}/stream",
                headers,
                started["session_id"],
                rate,
                duration,
            )
        finally:
            http_json(
                f"{viewer_side.url}/api/v1/stream/stop",
                {"session_id": started["session_id"]},
                {"Authorization": f"Bearer {token}"},
            )

    def _redis_round_trip(self, count: int = 2000) -> dict:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        subscriber = client.pubsub()
        channel = f"bench-{uuid.uuid4().hex}"
        subscriber.subscribe(channel)
        subscriber.get_message(timeout=1)
        latencies = []
        started = time.monotonic()
        for i in range(count):
            sent = time.perf_counter()
            client.publish(channel, str(i))
            while subscriber.get_message(timeout=1) is None:
                pass
            latencies.append((time.perf_counter() - sent) * 1000)
        elapsed = time.monotonic() - started
        subscriber.close()
        client.close()
        return {
            "pushed_per_second": count / elapsed,
            "accepted": count,
            "dropped": 0,
            "delivered_per_second": count / elapsed,
            "lost_below_budget": 0,
            "p50": loadgen.percentile(latencies, 0.5),
            "p99": loadgen.percentile(latencies, 0.99),
        }

    def _report(self, rows):
        self.stdout.write("")
        self.stdout.write(
            f"{'setup':32} {'viewers':>7} {'lines/s':>8} {'delivered/s':>12} {'dropped':>8} "
            f"{'lost':>5} {'p50 ms':>8} {'p99 ms':>8}"
        )
        for label, viewers, rate, r in rows:
            self.stdout.write(
                f"{label:32} {viewers:>7} {rate:>8} {r['delivered_per_second']:>12.0f} {r['dropped']:>8} "
                f"{r['lost_below_budget']:>5} {r['p50']:>8.1f} {r['p99']:>8.1f}"
            )
        self.stdout.write("")
        self.stdout.write(
            "targets (2 processes, Redis): 500 lines/s to 10 viewers p99 < 100 ms; "
            "2000 lines/s to 2 viewers p99 < 50 ms; no loss below the budget"
        )
