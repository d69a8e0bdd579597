"""PostgreSQL restarted under load (a private cluster on its own port, so nothing else is disturbed).

Requests in flight fail cleanly (503 in the envelope, never 500), the service recovers by itself
(CONN_HEALTH_CHECKS), and every metric batch acknowledged with 202 is in the database exactly once.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
from django.conf import settings

from bench.live import LiveServer, free_port, http_json

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:] or [""]
PG_CTL = os.path.join(BIN[0], "pg_ctl")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.path.exists(PG_CTL) or shutil.which("runuser") is None,
        reason="needs the PostgreSQL server binaries to run a private cluster",
    ),
]


def as_postgres(*command, check=True):
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture
def private_postgres():
    directory = tempfile.mkdtemp(prefix="logfleet-pg-")
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the cluster belongs to postgres
        shutil.chown(directory, "postgres")
    data, port = os.path.join(directory, "data"), free_port()
    as_postgres(os.path.join(BIN[0], "initdb"), "-D", data, "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start():
        as_postgres(PG_CTL, "-D", data, "-o", options, "-w", "start", "-l", os.path.join(directory, "log"))

    def stop():
        as_postgres(PG_CTL, "-D", data, "-m", "fast", "-w", "stop", check=False)

    start()
    as_postgres(os.path.join(BIN[0], "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "logfleet")
    url = f"postgres://postgres@127.0.0.1:{port}/logfleet"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": settings.SECRET_KEY}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    try:
        yield url, start, stop
    finally:
        stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_a_postgres_restart_fails_requests_cleanly_and_loses_no_acknowledged_batch(private_postgres):
    url, start, stop = private_postgres
    server = LiveServer(
        {
            "DATABASE_URL": url,
            "LOGFLEET_RATE_AUTH": "100000/m",
            "LOGFLEET_RATE_AGENTS": "100000/m",
            "LOGFLEET_RATE_EDGE": "100000/m",
        },
        redis=False,
    )
    try:
        status, registered = http_json(
            f"{server.url}/api/v1/auth/register",
            {"organization_name": "Restart", "email": "r@example.com", "password": "a sturdy passphrase", "name": "R"},
        )
        assert status == 201, registered
        bearer = {"Authorization": f"Bearer {registered['token']}"}
        status, created = http_json(
            f"{server.url}/api/v1/api-keys", {"name": "k", "permissions": ["edge:register", "edge:metrics"]}, bearer
        )
        key = {"X-API-Key": created["raw_key"]}
        status, agent = http_json(f"{server.url}/api/v1/edge/register", {"name": "store"}, key)
        assert status == 201

        acknowledged, statuses, stop_event = [], [], threading.Event()

        def push():
            while not stop_event.is_set():
                batch_id = uuid.uuid4().hex
                samples = [
                    {"name": "restart_total", "type": "counter", "labels": {}, "timestamp": time.time(), "value": 1}
                ]
                try:
                    status, body = http_json(
                        f"{server.url}/api/v1/edge/agents/{agent['id']}/metrics",
                        {"batch_id": batch_id, "samples": samples},
                        key,
                    )
                except OSError:
                    continue
                statuses.append((status, body.get("error") if isinstance(body, dict) else None))
                if status == 202 and not body["duplicate"]:
                    acknowledged.append(batch_id)
                time.sleep(0.02)

        pusher = threading.Thread(target=push)
        pusher.start()
        time.sleep(1.5)
        stop()
        time.sleep(1.5)
        start()
        time.sleep(3)
        stop_event.set()
        pusher.join(timeout=30)

        failures = [s for s in statuses if s[0] != 202]
        assert failures, "the outage should have refused some requests"
        assert all(s == (503, "service_unavailable") for s in failures), set(failures)
        assert statuses[-1][0] == 202  # recovered by itself
        status, names = http_json(f"{server.url}/api/v1/metrics/names", headers=bearer)
        assert status == 200
        total = next(item for item in names["items"] if item["name"] == "restart_total")
        assert total["series"] == 1
        end = int(time.time()) + 60
        status, result = http_json(
            f"{server.url}/api/v1/metrics/query?name=restart_total&start={end - 3600}&end={end}&step=3600&agg=count",
            headers=bearer,
        )
        assert sum(v for s in result["series"] for _t, v in s["points"]) == len(acknowledged)
        assert "unhandled error" not in server.output(full=True)
    finally:
        server.stop()
