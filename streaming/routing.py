from django.urls import path, re_path

from streaming.consumers import AgentConsumer, NotFoundConsumer, ViewerAuthMiddleware, ViewerConsumer

websocket_urlpatterns = [
    path("api/v1/stream/ws/<uuid:session_id>", ViewerAuthMiddleware(ViewerConsumer.as_asgi())),
    path("api/v1/edge/agents/<uuid:agent_id>/ws", AgentConsumer.as_asgi()),
    re_path(r"^", NotFoundConsumer.as_asgi()),
]
