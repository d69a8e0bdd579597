"""Two things Uvicorn does for WebSockets and Daphne does not: the close reason, and backpressure.

- Daphne (4.2) drops the `reason` of a `websocket.close` (django/daphne#374): a client would see
  4401 without the "why" every LogFleet close carries.
- Daphne's `send` never waits: a frame goes into Twisted's write buffer at once, however much is
  already waiting there. A viewer that stops reading would grow the server's memory without
  bound, and the application could not even tell. Uvicorn's `send` waits while the connection's
  write buffer is over its high-water mark, and the viewer's bounded outbox
  (streaming.outbox) drops and counts what does not fit.

`WebSocketFlow` wraps the ASGI application and gives Daphne both by talking to the autobahn
protocol object behind the `send` Daphne passes (`functools.partial(Server.handle_reply,
protocol)`). Under any other server, and if Daphne's internals change, it passes everything
through unchanged.
"""

import asyncio
import functools
import logging

logger = logging.getLogger("logfleet.websockets")

# As Uvicorn's WebSocket implementation: `send` waits once more than HIGH_WATER bytes are
# waiting to be written, until no more than LOW_WATER are.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024
# How often a waiting `send` looks at the write buffer (Twisted offers no drain callback here:
# the transport's producer slot is taken by the HTTP channel the socket was upgraded from).
POLL_SECONDS = 0.02
MAX_REASON_BYTES = 123  # what fits in a close frame


def _daphne_protocol(send):
    """The Daphne server and WebSocket protocol behind `send`, or None under another server."""
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return None
    server, protocol = getattr(send.func, "__self__", None), send.args[0]
    if isinstance(server, Server) and isinstance(protocol, WebSocketProtocol):
        return server, protocol
    return None


def unsent_bytes(transport) -> int:
    """Bytes a Twisted transport holds that the peer has not taken yet (TLS: those of the TCP
    transport under it); 0 when the transport is not one this understands."""
    for _ in range(3):
        if transport is None:
            return 0
        if hasattr(transport, "dataBuffer") and hasattr(transport, "_tempDataLen"):
            return len(transport.dataBuffer) - getattr(transport, "offset", 0) + transport._tempDataLen
        transport = getattr(transport, "transport", None)
    return 0


class WebSocketFlow:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        found = _daphne_protocol(send) if scope["type"] == "websocket" else None
        if found is None:
            return await self.app(scope, receive, send)
        server, protocol = found

        def is_open() -> bool:
            connection = server.connections.get(protocol)
            return (
                connection is not None and not connection.get("disconnected") and protocol.state == protocol.STATE_OPEN
            )

        async def send_with_flow(message):
            kind = message["type"]
            if kind == "websocket.close" and message.get("reason") and is_open():
                reason = message["reason"].encode("utf-8")[:MAX_REASON_BYTES].decode("utf-8", errors="ignore")
                protocol.sendClose(code=message.get("code") or 1000, reason=reason)
                return
            await send(message)
            if kind == "websocket.send" and unsent_bytes(protocol.transport) > HIGH_WATER:
                while is_open() and unsent_bytes(protocol.transport) > LOW_WATER:
                    await asyncio.sleep(POLL_SECONDS)

        return await self.app(scope, receive, send_with_flow)
