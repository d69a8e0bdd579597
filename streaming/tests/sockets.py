"""What the WebSocket tests share: communicators on the real router, and how a socket closed."""

import asyncio
import json

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from logfleet.asgi import application


def viewer(session_id, token, headers=None, app=application):
    path = f"/api/v1/stream/ws/{session_id}" + (f"?token={token}" if token is not None else "")
    return WebsocketCommunicator(app, path, headers=headers or [])


def agent_socket(agent, raw_key, app=application):
    return WebsocketCommunicator(app, f"/api/v1/edge/agents/{agent.pk}/ws", headers=[(b"x-api-key", raw_key.encode())])


def run(body):
    async_to_sync(body)()


async def close_of(communicator, timeout: float = 3) -> tuple[int, str]:
    """The code and reason the server closed with (skipping the accept of a refusal). Every close
    carries a reason (API.md section 8)."""
    message = await communicator.receive_output(timeout=timeout)
    if message["type"] == "websocket.accept":
        message = await communicator.receive_output(timeout=timeout)
    assert message["type"] == "websocket.close", message
    assert message.get("reason"), message
    return message.get("code"), message["reason"]


async def frames_then_close(communicator, timeout: float = 3) -> tuple[list[dict], int, str]:
    """The frames the socket still got, then the code and reason it closed with."""
    frames = []
    while True:
        message = await communicator.receive_output(timeout=timeout)
        if message["type"] == "websocket.send":
            frames.append(json.loads(message["text"]))
        elif message["type"] == "websocket.close":
            assert message.get("reason"), message
            return frames, message.get("code"), message["reason"]


async def closed_with(communicator, timeout: float = 3) -> int:
    return (await close_of(communicator, timeout))[0]


def line(message, level="INFO", source="nginx", metadata=None):
    return {
        "timestamp": "2024-01-15T10:30:00Z",
        "level": level,
        "message": message,
        "source": source,
        "metadata": {"file": "/var/log/x"} if metadata is None else metadata,
    }


class StallingClient:
    """An ASGI server whose WebSocket client can stop reading: `send` of a frame waits until it reads
    again (`reading.set()`), as it does under Uvicorn, and under Daphne with logfleet.websocket_server."""

    def __init__(self, app=application):
        self.app = app
        self.reading = asyncio.Event()
        self.reading.set()

    async def __call__(self, scope, receive, send):
        async def send_when_read(message):
            if message["type"] == "websocket.send":
                await self.reading.wait()
            await send(message)

        return await self.app(scope, receive, send_when_read)
