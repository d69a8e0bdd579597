"""WebSockets on real server processes: a credential ended through one process closes the sockets
on another, and every close carries its reason on Daphne as on Uvicorn (API.md sections 6 and 8)."""

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
from conftest import client_for
from logfleet.testing import LiveServer, http_json

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

needs_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs REDIS_URL: the channel layer several processes share"
)
# Starts of one user in a few seconds, past the Streaming group's 10/min.
ROOMY = {"LOGFLEET_RATE_STREAMING": "1000/m"}


def online_agent(org):
    agent = AgentFactory(organization=org)
    Agent.objects.filter(pk=agent.pk).update(
        last_heartbeat_at=timezone.now() + timedelta(minutes=5), reported_status="online"
    )
    return agent


async def closed(ws) -> tuple[int, str]:
    """Read until the server closes; its code and reason."""
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code, ws.close_reason


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_a_refused_socket_hears_why(org, server):
    live = LiveServer(redis=False, server=server)
    try:

        async def refused():
            async with websockets.connect(f"ws://127.0.0.1:{live.port}/api/v1/stream/ws/{org.pk}") as ws:
                return await closed(ws)

        assert asyncio.run(refused()) == (4401, "A valid access token is required (?token=)")
    finally:
        live.stop()


@needs_redis
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_logout_and_revocation_through_one_process_close_sockets_on_the_other(org, server):
    agent = online_agent(org)
    admin = UserFactory(organization=org)
    admin_token = client_for(admin).tokens.token
    viewer_token = client_for(UserFactory(organization=org)).tokens.token
    key, raw_key = make_key(org)
    sockets_side, api_side = LiveServer(ROOMY, server=server), LiveServer(ROOMY, server=server)
    try:
        status, started = http_json(
            f"{api_side.url}/api/v1/stream/start",
            {"agent_id": str(agent.pk)},
            {"Authorization": f"Bearer {admin_token}"},
        )
        assert status == 201, started
        viewer_url = f"ws://127.0.0.1:{sockets_side.port}/api/v1/stream/ws/{started['session_id']}"

        async def watch_and_end():
            async with (
                websockets.connect(f"{viewer_url}?token={viewer_token}") as viewer,
                websockets.connect(
                    f"ws://127.0.0.1:{sockets_side.port}/api/v1/edge/agents/{agent.pk}/ws",
                    additional_headers={"X-API-Key": raw_key},
                ) as agent_ws,
            ):
                assert json.loads(await viewer.recv())["event"] == "session_started"
                assert json.loads(await agent_ws.recv())["type"] == "stream.start"
                status, _ = await asyncio.to_thread(
                    http_json,
                    f"{api_side.url}/api/v1/auth/logout",
                    None,
                    {"Authorization": f"Bearer {viewer_token}"},
                    "POST",
                )
                assert status == 204
                assert await closed(viewer) == (4401, "Logged out")
                status, _ = await asyncio.to_thread(
                    http_json,
                    f"{api_side.url}/api/v1/api-keys/{key.pk}",
                    None,
                    {"Authorization": f"Bearer {admin_token}"},
                    "DELETE",
                )
                assert status == 204
                assert await closed(agent_ws) == (4401, "The API key was revoked")

        asyncio.run(watch_and_end())
    finally:
        sockets_side.stop()
        api_side.stop()
