"""`python -m streaming.watch`, the viewer the README gives: lines, reasons, and no token shown."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from accounts.tests.factories import UserFactory
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from bench.live import LiveServer, http_json
from conftest import client_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def watcher(url: str, token: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.watch", url],
        cwd=settings.BASE_DIR,
        env={**os.environ, "LOGFLEET_TOKEN": token, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_watch_command_prints_lines_and_why_the_socket_closed(org):
    agent = AgentFactory(organization=org)
    token = client_for(UserFactory(organization=org)).tokens.token
    raw_key = make_key(org)[1]
    server = LiveServer()
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        http_json(f"{server.url}/api/v1/edge/agents/{agent.pk}/heartbeat", {"status": "online"}, {"X-API-Key": raw_key})
        started = http_json(f"{server.url}/api/v1/stream/start", {"agent_id": str(agent.pk)}, bearer)[1]
        process = watcher(started["websocket_url"], token)
        assert process.stdout.readline().startswith("[session_started")
        line = {"timestamp": "2024-01-15T10:30:00Z", "level": "ERROR", "message": "disk full", "source": "app"}
        push = {"session_id": started["session_id"], "logs": [line]}
        assert http_json(f"{server.url}/api/v1/edge/agents/{agent.pk}/stream", push, {"X-API-Key": raw_key})[0] == 202
        assert process.stdout.readline() == "1 2024-01-15T10:30:00Z ERROR app disk full\n"
        http_json(f"{server.url}/api/v1/stream/stop", {"session_id": started["session_id"]}, bearer)
        out, err = process.communicate(timeout=10)
        assert process.returncode == 0 and "[session_ended: reason=stopped]" in out
        assert "[closed: 1000" in err and token not in out + err

        refused = watcher(started["websocket_url"], "not-a-token")
        out, err = refused.communicate(timeout=10)
        assert refused.returncode == 1 and "[closed: 4401 " in err, err
    finally:
        server.stop()


def test_the_watch_command_takes_no_token_on_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "streaming.watch", "ws://localhost:8080/api/v1/stream/ws/x?token=abc"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "LOGFLEET_TOKEN": "t"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "LOGFLEET_TOKEN" in result.stderr


def test_the_watch_command_says_when_it_cannot_connect():
    from bench.live import free_port

    url = f"ws://127.0.0.1:{free_port()}/api/v1/stream/ws/x"
    result = subprocess.run(
        [sys.executable, "-m", "streaming.watch", url],
        cwd=settings.BASE_DIR,
        env={**os.environ, "LOGFLEET_TOKEN": "t"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and f"[cannot connect to {url}" in result.stderr
    assert "Traceback" not in result.stderr
