"""Redis stopped under a running server (its own Redis on its own port, so nothing else is disturbed).

HTTP endpoints that do not need Redis keep working; rate limits fail open (logged), except
login's, which the server process counts itself meanwhile; readiness reports Redis; streaming
answers 503 while the channel layer is down and recovers when it returns.
"""

import shutil
import socket
import subprocess
import time

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents.models import Agent
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from bench.live import LiveServer, free_port, http_json
from conftest import client_for

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to start a private Redis"),
]


AUTH_LIMIT = 3


def login(base_url: str) -> int:
    return http_json(f"{base_url}/api/v1/auth/login", {"email": "nobody@example.com", "password": "x"})[0]


class PrivateRedis:
    def __init__(self, port: int):
        self.port = port
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def test_a_redis_outage_degrades_cleanly_and_recovers(org):
    agent = AgentFactory(organization=org)
    Agent.objects.filter(pk=agent.pk).update(
        last_heartbeat_at=timezone.now() + timezone.timedelta(minutes=5), reported_status="online"
    )
    user = UserFactory(organization=org, role=Role.ADMIN)
    bearer = {"Authorization": f"Bearer {client_for(user).tokens.token}"}
    key = {"X-API-Key": make_key(org)[1]}
    port = free_port()
    redis = PrivateRedis(port)
    # A low Authentication limit, reached in a few requests (hourly: the test cannot straddle the end
    # of a window in practice).
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "LOGFLEET_RATE_AUTH": f"{AUTH_LIMIT}/h"}
    server = LiveServer(env, redis=False)
    try:
        assert http_json(f"{server.url}/readyz")[0] == 200
        status, started = http_json(f"{server.url}/api/v1/stream/start", {"agent_id": str(agent.pk)}, bearer)
        assert status == 201, started

        redis.stop()
        status, ready = http_json(f"{server.url}/readyz")
        assert status == 503 and ready["checks"]["database"] == "ok" and ready["checks"]["redis"].startswith("error")
        assert http_json(f"{server.url}/healthz")[0] == 200
        status, me = http_json(f"{server.url}/api/v1/auth/me", headers=bearer)  # rate limit fails open
        assert status == 200, me
        # Login does not: without the shared counters the process counts the attempts itself.
        logins = [login(server.url) for _ in range(AUTH_LIMIT + 2)]
        assert logins == [401] * AUTH_LIMIT + [429, 429], logins
        status, beat = http_json(f"{server.url}/api/v1/edge/agents/{agent.pk}/heartbeat", {"status": "online"}, key)
        assert status == 200, beat  # key records and agent identities come from the database
        status, pushed = http_json(
            f"{server.url}/api/v1/edge/agents/{agent.pk}/stream",
            {"session_id": started["session_id"], "logs": [{"message": "x"}]},
            key,
        )
        assert status == 503 and pushed["error"] == "service_unavailable", pushed
        status, refused = http_json(f"{server.url}/api/v1/stream/start", {"agent_id": str(agent.pk)}, bearer)
        assert status == 503 and refused["error"] == "service_unavailable", refused

        redis = PrivateRedis(port)
        deadline = time.monotonic() + 15
        while http_json(f"{server.url}/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert http_json(f"{server.url}/readyz")[0] == 200
        status, pushed = http_json(
            f"{server.url}/api/v1/edge/agents/{agent.pk}/stream",
            {"session_id": started["session_id"], "logs": [{"message": "x"}]},
            key,
        )
        assert status == 202, pushed
        assert login(server.url) == 401  # counted in Redis again, where this window had no attempt
        output = server.output(full=True)  # expected warnings carry tracebacks; no request failed as a bug
        assert "unhandled error" not in output and '" 500 ' not in output
        assert "logfleet.W001" in output  # REDIS_URL without TRUSTED_PROXY_COUNT: logged at start
    finally:
        server.stop()
        redis.stop()
