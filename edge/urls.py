from django.urls import path

from edge import views

urlpatterns = [
    # Hottest first (the resolver tries them in order).
    path("edge/agents/<uuid:agent_id>/heartbeat", views.HeartbeatView.as_view(), name="edge-heartbeat"),
    path("edge/register", views.RegisterView.as_view(), name="edge-register"),
    path("edge/heartbeat", views.CompatHeartbeatView.as_view(), name="edge-heartbeat-compat"),
    path("edge/sync-config", views.CompatSyncConfigView.as_view(), name="edge-sync-config-compat"),
    path("edge/agents/<uuid:agent_id>/metric-config", views.SyncConfigView.as_view(), name="edge-sync-config"),
    path("edge/agents/<uuid:agent_id>/metrics", views.MetricsPushView.as_view(), name="edge-metrics"),
    path("edge/agents/<uuid:agent_id>/stream", views.StreamPushView.as_view(), name="edge-stream"),
]
