"""ASGI entry point, in the Channels tutorial's shape: HTTP through Django (logfleet.http_handler),
WebSockets through the consumers of the edge (agents) and streaming (viewers) apps."""

import gc
import os

from logfleet.http_handler import get_http_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "logfleet.settings")

# Set Django up first: the routing modules import models.
http_application = get_http_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from edge import routing as edge_routing  # noqa: E402
from logfleet.websocket_server import WebSocketFlow  # noqa: E402
from streaming import routing as streaming_routing  # noqa: E402

websocket_urlpatterns = [
    *edge_routing.websocket_urlpatterns,
    *streaming_routing.websocket_urlpatterns,
    *streaming_routing.not_found_urlpatterns,
]
application = ProtocolTypeRouter(
    {"http": http_application, "websocket": WebSocketFlow(URLRouter(websocket_urlpatterns))}
)

# The garbage collector, tuned for a server that holds many long-lived objects (one consumer, its
# tasks and buffers per open socket): at Python's defaults (a collection every 700 allocations, a
# full one every hundred) collecting took more than half the CPU of a process with 10 000 agent
# sockets, and its full passes held the event loop for long enough to put heartbeat acks past a
# second. What exists once the application is built is never garbage (frozen: no pass looks at it),
# and a collection waits for 50 000 new container objects (bench_fleet: see the README).
gc.freeze()
gc.set_threshold(50_000, 10, 10)
