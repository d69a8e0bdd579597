"""The agent socket across two server processes (PostgreSQL or SQLite, and Redis): the socket on one,
the people's requests on the other."""

import asyncio
import json
import os
import signal
import time

import pytest
from django.conf import settings

from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from bench.live import LiveServer, http_json
from conftest import client_for

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: the cache and channel layer processes share"),
]

# Short, so that a dead process's agents are seen disconnected within the test's patience.
PRESENCE_SECONDS = "2"


def agent_read(server, token, agent) -> dict:
    status, body = http_json(f"{server.url}/api/v1/agents/{agent.pk}", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    return body


async def eventually(check, timeout: float = 8.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_a_socket_on_one_process_hears_the_other_and_shows_connected(org, admin_user, kind):
    import websockets

    token = client_for(admin_user).tokens.token
    bearer = {"Authorization": f"Bearer {token}"}
    key, raw = make_key(org)
    agent = AgentFactory(organization=org, name="store-01")
    env = {"AGENT_PRESENCE_SECONDS": PRESENCE_SECONDS}
    one, two = LiveServer(env, server=kind), LiveServer(env, server=kind)
    try:

        async def body():
            url = one.url.replace("http://", "ws://") + f"/api/v1/edge/agents/{agent.pk}/ws"
            async with websockets.connect(url, additional_headers={"X-API-Key": raw}) as ws:
                await ws.send(json.dumps({"type": "heartbeat", "ref": "r1", "status": "online", "version": "9"}))
                ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert (ack["type"], ack["ref"], ack["status"]) == ("heartbeat.ack", "r1", "acknowledged"), ack
                seen = await asyncio.to_thread(agent_read, two, token, agent)
                assert (seen["status"], seen["version"], seen["connected"]) == ("online", "9", True), seen
                assert seen["ip_address"] == "127.0.0.1"

                status, started = await asyncio.to_thread(
                    http_json, f"{two.url}/api/v1/stream/start", {"agent_id": str(agent.pk)}, bearer
                )
                assert status == 201, started
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert (frame["type"], frame["session_id"]) == ("stream.start", started["session_id"])

                status, _ = await asyncio.to_thread(
                    http_json, f"{two.url}/api/v1/api-keys/{key.pk}", None, bearer, "DELETE"
                )
                assert status == 204
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "The API key was revoked")
            assert await eventually(lambda: not agent_read(two, token, agent)["connected"])

        asyncio.run(body())
    finally:
        one.stop()
        two.stop()


def test_an_agent_whose_process_died_is_soon_not_connected(org, admin_user):
    import websockets

    token = client_for(admin_user).tokens.token
    _key, raw = make_key(org)
    agent = AgentFactory(organization=org)
    env = {"AGENT_PRESENCE_SECONDS": PRESENCE_SECONDS}
    one, two = LiveServer(env), LiveServer(env)
    try:

        async def body():
            url = one.url.replace("http://", "ws://") + f"/api/v1/edge/agents/{agent.pk}/ws"
            ws = await websockets.connect(url, additional_headers={"X-API-Key": raw})
            await asyncio.sleep(float(PRESENCE_SECONDS) * 2)  # past one lifetime: the record was refreshed
            assert (await asyncio.to_thread(agent_read, two, token, agent))["connected"] is True
            os.kill(one.process.pid, signal.SIGKILL)  # no close, no goodbye
            assert await eventually(lambda: not agent_read(two, token, agent)["connected"])
            ws.transport.abort()

        asyncio.run(body())
    finally:
        one.stop()
        two.stop()
