"""The whole loop with real processes: Daphne and the reference agent on a temporary log file.

Lines appended to the file become samples queryable through /metrics/query and live lines on a
viewer's WebSocket; the server is stopped for a while and restarted, and no sample is lost or
counted twice. It runs twice: with the agent's heartbeats and lines over its WebSocket, and
through a proxy that passes HTTP but no WebSocket, where the agent falls back to HTTP for them.
"""

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websockets
from django.conf import settings

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents import services as agent_services
from agents.models import Agent
from apikeys.tests.factories import make_key
from bench.live import LiveServer, http_json
from conftest import client_for
from edge.agent.loggen import line
from metrics import services as metric_services
from metrics.examples import nginx_example
from metrics.models import MetricBatch

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def get(url, token):
    status, body = http_json(url, headers={"Authorization": f"Bearer {token}"})
    if status != 200:
        raise OSError(f"{status}: {body}")
    return body


def post(url, token, body):
    status, answer = http_json(url, body, {"Authorization": f"Bearer {token}"})
    assert status in (200, 201), answer
    return answer


def requests_counted(server, token) -> float:
    end = int(time.time()) + 120
    body = get(
        f"{server.url}/api/v1/metrics/query?name=http_requests_total&start={end - 7200}&end={end}&step=3600", token
    )
    return sum(value for series in body["series"] for _ts, value in series["points"])


def wait_for(condition, timeout: float, what: str, describe=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}" + (f": {describe()}" if describe else ""))


class HttpOnlyProxy:
    """A reverse proxy to `upstream` that passes HTTP requests and refuses WebSocket upgrades (502),
    as some proxies in front of a server do."""

    def __init__(self, upstream: str):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def forward(self):
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    self.answer(502, {}, b"")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                request = urllib.request.Request(upstream + self.path, data=body, method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=15) as response:
                        self.answer(response.status, response.headers, response.read())
                except urllib.error.HTTPError as exc:
                    self.answer(exc.code, exc.headers, exc.read())
                except OSError:
                    self.answer(502, {}, b"")

            def answer(self, status, headers, body):
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def http_heartbeats(server) -> int:
    """The HTTP heartbeats in the server's access log."""
    return len(re.findall(r'"POST /api/v1/edge/agents/[0-9a-f-]+/heartbeat', server.output(full=True)))


@pytest.mark.parametrize("transport", ["socket", "http behind a proxy without websockets"])
def test_log_lines_become_metrics_and_live_lines_and_survive_a_server_outage(org, tmp_path, transport):
    user = UserFactory(organization=org, role=Role.ADMIN)
    token = client_for(user).tokens.token
    _key, raw_key = make_key(org)
    metric_services.metric_config_create(organization=org, actor=user, **nginx_example())
    agent = agent_services.agent_create(organization=org, name="store-01", actor=user)
    agent_services.agent_config_update(
        agent=agent,
        version=1,
        actor=user,
        config={**agent.config, "heartbeat_interval_seconds": 5, "metrics_interval_seconds": 10},
    )
    log_file = tmp_path / "access.log"
    rng = random.Random(7)
    log_file.write_text("".join(line(rng) + "\n" for _ in range(5)))  # before the agent: not counted

    # The test polls the dashboard and agent endpoints far faster than a person would.
    env = {"LOGFLEET_RATE_DASHBOARD": "100000/m", "LOGFLEET_RATE_AGENTS": "100000/m"}
    server = LiveServer(env)
    proxy = HttpOnlyProxy(server.url) if transport != "socket" else None
    agent_log = open(tmp_path / "agent.log", "w+")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.agent",
            "--server",
            proxy.url if proxy else server.url,
            "--name",
            "store-01",
            "--source",
            f"nginx={log_file}",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=settings.BASE_DIR,
        stdout=agent_log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "LOGFLEET_API_KEY": raw_key},
    )

    def append(count: int, text: str | None = None):
        with log_file.open("a") as handle:
            for _ in range(count):
                handle.write((text or line(rng)) + "\n")

    def agent_output() -> str:
        agent_log.flush()
        return (tmp_path / "agent.log").read_text()[-3000:]

    try:
        wait_for(lambda: Agent.objects.with_status().get(pk=agent.pk).status == "online", 30, "the agent online")
        if proxy is None:
            wait_for(lambda: get(f"{server.url}/api/v1/agents/{agent.pk}", token)["connected"], 30, "connected")
        wait_for(lambda: "applied 1 metric config" in agent_output(), 30, "the config applied")
        wait_for(
            lambda: get(f"{server.url}/api/v1/agents/{agent.pk}", token)["config_status"] == "in_sync",
            30,
            "config in sync",
        )
        append(30)
        wait_for(lambda: requests_counted(server, token) == 30, 40, "30 requests counted")

        started = post(
            f"{server.url}/api/v1/stream/start", token, {"agent_id": str(agent.pk), "filters": {"pattern": "marker-42"}}
        )

        async def watch():
            async with websockets.connect(f"{started['websocket_url']}?token={token}") as ws:
                assert json.loads(await ws.recv())["event"] == "session_started"
                # At once over its WebSocket; at its next heartbeat (5 s) without one.
                session_heard = f"streaming session {started['session_id']} started"
                await asyncio.to_thread(wait_for, lambda: session_heard in agent_output(), 15, "the session heard of")
                await asyncio.to_thread(append, 3, '10.0.0.1 - - [x] "GET /marker-42 HTTP/1.1" 200 1 request_time=0.1')
                await asyncio.to_thread(append, 2)
                frames = [json.loads(await asyncio.wait_for(ws.recv(), 15)) for _ in range(3)]
                assert [f["seq"] for f in frames] == [1, 2, 3]
                assert all("marker-42" in f["message"] and f["source"] == "nginx" for f in frames)

        asyncio.run(watch())
        post(f"{server.url}/api/v1/stream/stop", token, {"session_id": started["session_id"]})
        wait_for(
            lambda: requests_counted(server, token) == 35,
            40,
            "35 requests counted",
            lambda: (requests_counted(server, token), agent_output()),
        )

        # About twelve heartbeats so far: over the socket all but maybe the first (sent while it
        # connected), over HTTP all of them behind the proxy, which the agent was never connected through.
        agent_view = get(f"{server.url}/api/v1/agents/{agent.pk}", token)
        assert agent_view["status"] == "online"
        if proxy is None:
            assert agent_view["connected"] and http_heartbeats(server) <= 1, server.output()
            assert "agent socket connected" in agent_output()
        else:
            assert not agent_view["connected"] and http_heartbeats(server) >= 3, server.output()
            assert "agent socket unavailable" in agent_output()
        port = server.port
        server.stop()
        append(20)
        wait_for(
            lambda: "batch(es) queued" in agent_output(), 40, "the agent to queue a batch while the server is down"
        )
        server = LiveServer(env, port=port)
        wait_for(lambda: requests_counted(server, token) == 55, 60, "the queued batches delivered")
        time.sleep(3)
        assert requests_counted(server, token) == 55  # nothing counted twice
        assert MetricBatch.objects.filter(agent_id=agent.pk).count() >= 3
        if proxy is None:  # the socket reconnected to the new process, after its random delay
            wait_for(lambda: get(f"{server.url}/api/v1/agents/{agent.pk}", token)["connected"], 60, "reconnected")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=20) == 0, agent_output()
        finally:
            if process.poll() is None:
                process.kill()
            server.stop()
            agent_log.close()
            if proxy is not None:
                proxy.stop()
    assert "stopped;" in (tmp_path / "agent.log").read_text()
