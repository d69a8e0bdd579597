from django.urls import path, re_path

from streaming.consumers import NotFoundConsumer, ViewerAuthMiddleware, ViewerConsumer

websocket_urlpatterns = [
    path("api/v1/stream/ws/<uuid:session_id>", ViewerAuthMiddleware(ViewerConsumer.as_asgi())),
]

# Last, after every app's sockets (logfleet.asgi).
not_found_urlpatterns = [re_path(r"^", NotFoundConsumer.as_asgi())]
