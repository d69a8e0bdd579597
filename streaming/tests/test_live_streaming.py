"""End to end across processes: a viewer on one Daphne, the agent pushing to another, sharing
the database and Redis (API.md section 8)."""

import asyncio
import json
from datetime import timedelta

import pytest
import websockets
from django.conf import settings
from django.utils import timezone

from accounts.tests.factories import UserFactory
from agents.models import Agent
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from bench.live import LiveServer, http_json
from conftest import client_for

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: the channel layer several processes share"),
]


def line(message, level="INFO"):
    return {"timestamp": "2024-01-15T10:30:00Z", "level": level, "message": message, "source": "app", "metadata": {}}


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_lines_stop_and_timeout_cross_processes(org, server):
    agent = AgentFactory(organization=org)
    Agent.objects.filter(pk=agent.pk).update(
        last_heartbeat_at=timezone.now() + timedelta(minutes=5), reported_status="online"
    )
    token = client_for(UserFactory(organization=org)).tokens.token
    raw_key = make_key(org)[1]
    # Starts, stops and restarts of one user in a few seconds, past the Streaming group's 10/min.
    env = {"LOGFLEET_RATE_STREAMING": "1000/m"}
    viewer_side, agent_side = LiveServer(env, server=server), LiveServer(env, server=server)
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        status, started = http_json(
            f"{viewer_side.url}/api/v1/stream/start",
            {"agent_id": str(agent.pk), "filters": {"level": ["error"]}},
            bearer,
        )
        assert status == 201, started
        session_id = started["session_id"]
        assert started["websocket_url"] == f"ws://127.0.0.1:{viewer_side.port}/api/v1/stream/ws/{session_id}"
        push_url = f"{agent_side.url}/api/v1/edge/agents/{agent.pk}/stream"

        async def watch_until_stopped():
            async with websockets.connect(f"{started['websocket_url']}?token={token}") as ws:
                assert json.loads(await ws.recv())["event"] == "session_started"
                lines = [line(f"error {i}", "ERROR") if i % 2 == 0 else line(f"info {i}") for i in range(40)]
                status, result = await asyncio.to_thread(
                    http_json, push_url, {"session_id": session_id, "logs": lines}, {"X-API-Key": raw_key}
                )
                assert status == 202 and result["accepted"] == 20 and result["filtered"] == 20, result
                frames = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(20)]
                assert [f["seq"] for f in frames] == list(range(1, 21))
                assert [f["message"] for f in frames] == [f"error {i}" for i in range(0, 40, 2)]
                status, _ = await asyncio.to_thread(
                    http_json, f"{agent_side.url}/api/v1/stream/stop", {"session_id": session_id}, bearer
                )
                assert status == 200
                ended = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert ended == {"type": "control", "event": "session_ended", "reason": "stopped"}
                with pytest.raises(websockets.ConnectionClosedOK):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1000

        asyncio.run(watch_until_stopped())
        status, _ = http_json(
            push_url, {"session_id": session_id, "logs": [line("late", "ERROR")]}, {"X-API-Key": raw_key}
        )
        assert status == 410

        status, short = http_json(
            f"{agent_side.url}/api/v1/stream/start", {"agent_id": str(agent.pk), "timeout_seconds": 2}, bearer
        )
        assert status == 201

        async def watch_until_timeout():
            async with websockets.connect(
                f"{short['websocket_url'].replace(str(agent_side.port), str(viewer_side.port))}?token={token}"
            ) as ws:
                events = [json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] for _ in range(3)]
                assert events == ["session_started", "session_ending", "session_ended"]

        asyncio.run(watch_until_timeout())
        assert token not in viewer_side.output() and token not in agent_side.output()
    finally:
        viewer_side.stop()
        agent_side.stop()


def test_a_server_killed_mid_stream_never_leaves_viewers_hanging(org):
    agent = AgentFactory(organization=org)
    Agent.objects.filter(pk=agent.pk).update(
        last_heartbeat_at=timezone.now() + timedelta(minutes=5), reported_status="online"
    )
    token = client_for(UserFactory(organization=org)).tokens.token
    raw_key = make_key(org)[1]
    # Several starts of one user in a few seconds, past the Streaming group's 10/min.
    doomed, survivor = (
        LiveServer({"LOGFLEET_RATE_STREAMING": "1000/m"}),
        LiveServer({"LOGFLEET_RATE_STREAMING": "1000/m"}),
    )
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        status, started = http_json(f"{survivor.url}/api/v1/stream/start", {"agent_id": str(agent.pk)}, bearer)
        assert status == 201
        path = f"/api/v1/stream/ws/{started['session_id']}?token={token}"
        push_url = f"{survivor.url}/api/v1/edge/agents/{agent.pk}/stream"

        async def watch():
            async with (
                websockets.connect(f"ws://127.0.0.1:{doomed.port}{path}") as lost,
                websockets.connect(f"ws://127.0.0.1:{survivor.port}{path}") as kept,
            ):
                for ws in (lost, kept):
                    assert json.loads(await ws.recv())["event"] == "session_started"
                doomed.process.kill()
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(lost.recv(), 10)  # closed, not hanging
                status, _ = await asyncio.to_thread(
                    http_json,
                    push_url,
                    {"session_id": started["session_id"], "logs": [line("still here")]},
                    {"X-API-Key": raw_key},
                )
                assert status == 202
                frame = json.loads(await asyncio.wait_for(kept.recv(), 5))
                assert (frame["seq"], frame["message"]) == (1, "still here")

        asyncio.run(watch())
    finally:
        doomed.stop()
        survivor.stop()
