"""WebSockets on real server processes: a credential ended through one process closes the sockets
on another, and every close carries its reason on Daphne as on Uvicorn (API.md sections 6 and 8)."""

import asyncio
import json
import socket
from datetime import timedelta

import pytest
import websockets
from django.conf import settings
from django.utils import timezone
from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from accounts.tests.factories import UserFactory
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from bench.live import LiveServer, http_json
from conftest import client_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

needs_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs REDIS_URL: the channel layer several processes share"
)
# Starts of one user in a few seconds, past the Streaming group's 10/min.
ROOMY = {"LOGFLEET_RATE_STREAMING": "1000/m"}


def online_agent(org):
    # Seen "in the future": online for the whole test, however long the processes take to start.
    return AgentFactory(
        organization=org, last_heartbeat_at=timezone.now() + timedelta(minutes=5), reported_status="online"
    )


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

        assert asyncio.run(refused()) == (4401, "Sign in, or give a valid access token (?token=)")
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


class StalledViewer:
    """A viewer's WebSocket on a plain blocking socket with a small receive window, read only when
    asked (websockets' own clients keep reading into memory): while it is not asked, the kernel's
    buffers fill up and the server has to hold, or drop, what comes next."""

    def __init__(self, port: int, path: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(10)
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self.pending: list = []
        self._flush()
        while not self.pending or not isinstance(self.pending[0], Response):
            self._read()
        assert self.pending.pop(0).status_code == 101

    def _flush(self):
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def _read(self):
        data = self.sock.recv(65536)
        self.protocol.receive_data(data)
        self.pending += self.protocol.events_received()
        self._flush()  # pongs and the closing handshake
        if not data:
            raise ConnectionError("closed")

    def frames(self):
        """Every text frame until the server closes, then (code, reason) of the close."""
        while True:
            while not self.pending:
                self._read()
            frame = self.pending.pop(0)
            if frame.opcode == Opcode.TEXT:
                yield json.loads(frame.data)
            elif frame.opcode == Opcode.CLOSE:
                close = Close.parse(frame.data)
                yield close.code, close.reason
                return

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_a_viewer_that_stops_reading_costs_the_server_a_bounded_amount(org, server):
    agent = online_agent(org)
    token = client_for(UserFactory(organization=org)).tokens.token
    raw_key = make_key(org)[1]
    live = LiveServer(
        {
            **ROOMY,
            # Far over what one viewer can take while it is not reading; the default budgets would
            # drop most of these lines before any viewer, which is not what this is about.
            "STREAM_MAX_LINES_PER_SECOND": "1000000",
            "STREAM_MAX_BYTES_PER_SECOND": "1000000000",
        },
        server=server,
    )
    bearer = {"Authorization": f"Bearer {token}"}
    pushes, per_push, filler = 24, 1000, "x" * 1000
    try:
        status, started = http_json(f"{live.url}/api/v1/stream/start", {"agent_id": str(agent.pk)}, bearer)
        assert status == 201, started
        session_id = started["session_id"]
        stalled = StalledViewer(live.port, f"/api/v1/stream/ws/{session_id}?token={token}")
        frames = stalled.frames()
        assert next(frames)["event"] == "session_started"
        accepted = 0
        for push in range(pushes):
            lines = [line(f"{push}-{i} {filler}") for i in range(per_push)]
            status, result = http_json(
                f"{live.url}/api/v1/edge/agents/{agent.pk}/stream",
                {"session_id": session_id, "logs": lines},
                {"X-API-Key": raw_key},
            )
            assert status == 202, result
            accepted += result["accepted"]
        status, _ = http_json(f"{live.url}/api/v1/stream/stop", {"session_id": session_id}, bearer)
        assert status == 200
        seen, expected = 0, 1
        for frame in frames:
            if isinstance(frame, tuple):
                assert frame[0] == 1000, frame
                break
            if frame["type"] == "log":
                assert frame["seq"] == expected
                expected += 1
                seen += 1
            elif frame["event"] == "lines_dropped":
                expected += frame["count"]
            else:
                assert frame == {"type": "control", "event": "session_ended", "reason": "stopped"}
        stalled.close()
        assert accepted == pushes * per_push
        # Every line reached the viewer or was counted for it; what it got late is what the server
        # (and the kernel's socket buffers, a few MB) held for it while it was not reading.
        assert expected - 1 == accepted
        assert seen < accepted / 4, seen
    finally:
        live.stop()


def line(message):
    return {"timestamp": "2024-01-15T10:30:00Z", "level": "INFO", "message": message, "source": "app", "metadata": {}}
