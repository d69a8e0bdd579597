"""The agent process on a permanent refusal and on an unreachable server: it says why."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from apikeys.tests.factories import make_key
from bench.live import LiveServer, free_port

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def run_agent(server_url: str, raw_key: str, tmp_path, timeout: float) -> subprocess.CompletedProcess | str:
    command = [sys.executable, "-m", "edge.agent", "--server", server_url, "--name", "remote-01"]
    command += ["--state-dir", str(tmp_path / "state")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOGFLEET_API_KEY": raw_key}
    try:
        return subprocess.run(command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return (exc.stdout or b"").decode() + (exc.stderr or b"").decode()


def test_an_agent_whose_host_name_the_server_refuses_says_so_and_exits(org, tmp_path):
    # A server that serves only its public name; the agent reaches it by another one (its address).
    server = LiveServer({"ALLOWED_HOSTS": "fleet.example.com"})
    try:
        result = run_agent(server.url, make_key(org)[1], tmp_path, timeout=30)
    finally:
        server.stop()
    assert isinstance(result, subprocess.CompletedProcess), result  # it stopped by itself
    assert result.returncode == 2
    assert "registration refused for good" in result.stderr
    assert "the host '127.0.0.1';" in result.stderr and "ALLOWED_HOSTS" in result.stderr


def test_an_unreachable_server_is_named_in_the_agents_log(org, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    output = run_agent(url, make_key(org)[1], tmp_path, timeout=3)
    assert isinstance(output, str), "the agent keeps retrying while the server is away"
    assert f"{url} unreachable" in output
