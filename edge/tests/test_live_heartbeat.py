"""A real server writes the heartbeats it buffered (agents.heartbeats) on its writer thread."""

import time

import pytest

from agents.models import Agent
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import LiveServer, http_json

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_a_heartbeat_is_in_the_database_within_the_flush_interval(org):
    agent = AgentFactory(organization=org)
    _key, raw = make_key(org, permissions=["edge:heartbeat"])
    server = LiveServer({"HEARTBEAT_FLUSH_SECONDS": "1"})
    try:
        status, body = http_json(
            f"{server.url}/api/v1/edge/agents/{agent.pk}/heartbeat",
            {"status": "online", "version": "3.1"},
            {"X-API-Key": raw},
        )
        assert status == 200 and body["config_hash"] == agent.config_hash
        answered = time.monotonic()
        while time.monotonic() - answered < 5:
            agent.refresh_from_db()
            if agent.last_heartbeat_at is not None:
                break
            time.sleep(0.05)
        # Written by the server's writer thread, not by the request (no benchmark-style timing here).
        assert agent.last_heartbeat_at is not None and agent.version == "3.1"
    finally:
        server.stop()
    assert Agent.objects.get(pk=agent.pk).reported_status == "online"
