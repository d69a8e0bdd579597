from django.urls import path

from edge import views

urlpatterns = [
    path("edge/register", views.RegisterView.as_view(), name="edge-register"),
    path("edge/heartbeat", views.CompatHeartbeatView.as_view(), name="edge-heartbeat-compat"),
    path("edge/agents/<uuid:agent_id>/heartbeat", views.HeartbeatView.as_view(), name="edge-heartbeat"),
]
