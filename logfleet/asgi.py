"""ASGI entry point, in the Channels tutorial's shape: HTTP through Django (logfleet.http_handler),
WebSockets through the consumers of the edge (agents) and streaming (viewers) apps."""

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
