from django.urls import path

from edge.consumers import AgentConsumer

websocket_urlpatterns = [
    path("api/v1/edge/agents/<uuid:agent_id>/ws", AgentConsumer.as_asgi()),
]
