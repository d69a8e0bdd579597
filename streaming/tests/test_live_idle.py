"""A real server ends a session its viewer left, and tells the agent at once (STREAM_IDLE_SECONDS)."""

import asyncio
import json

import pytest
import websockets

from accounts.tests.factories import UserFactory
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from bench.live import LiveServer, http_json
from conftest import client_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_a_session_whose_viewer_left_ends_idle_and_the_agent_hears_it_at_once(org):
    agent = AgentFactory(organization=org)
    token = client_for(UserFactory(organization=org)).tokens.token
    raw_key = make_key(org)[1]
    # Two seconds instead of the default minute, so that the test does not wait a minute.
    server = LiveServer({"STREAM_IDLE_SECONDS": "2"})
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        assert (
            http_json(
                f"{server.url}/api/v1/edge/agents/{agent.pk}/heartbeat", {"status": "online"}, {"X-API-Key": raw_key}
            )[0]
            == 200
        )
        ws_base = server.url.replace("http://", "ws://")

        async def scenario():
            agent_url = f"{ws_base}/api/v1/edge/agents/{agent.pk}/ws"
            async with websockets.connect(agent_url, additional_headers={"X-API-Key": raw_key}) as agent_ws:
                status, started = await asyncio.to_thread(
                    http_json, f"{server.url}/api/v1/stream/start", {"agent_id": str(agent.pk)}, bearer
                )
                assert status == 201, started
                session_id = started["session_id"]
                assert json.loads(await asyncio.wait_for(agent_ws.recv(), 5))["type"] == "stream.start"
                async with websockets.connect(f"{started['websocket_url']}?token={token}") as viewer:
                    await asyncio.wait_for(viewer.recv(), 5)
                    await asyncio.sleep(4)  # twice the idle time, watched all along: still open
                    _status, shown = await asyncio.to_thread(
                        http_json, f"{server.url}/api/v1/stream/sessions/{session_id}", None, bearer
                    )
                    assert shown["status"] == "pending" and shown["end_reason"] is None, shown
                # Pushed to the agent's socket when the idle time is over, not at its next heartbeat.
                stop = json.loads(await asyncio.wait_for(agent_ws.recv(), 10))
                assert stop == {"type": "stream.stop", "session_id": session_id}
                return session_id

        session_id = asyncio.run(scenario())
        _status, shown = http_json(f"{server.url}/api/v1/stream/sessions/{session_id}", None, bearer)
        assert (shown["status"], shown["end_reason"]) == ("stopped", "idle"), shown
    finally:
        server.stop()
