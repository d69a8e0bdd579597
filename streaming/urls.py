from django.urls import path

from streaming.views import StreamViewSet

urlpatterns = [
    path("stream/start", StreamViewSet.as_view({"post": "start"}), name="stream-start"),
    path("stream/stop", StreamViewSet.as_view({"post": "stop"}), name="stream-stop"),
    path("stream/sessions", StreamViewSet.as_view({"get": "list"}), name="stream-sessions"),
    path("stream/sessions/<str:pk>", StreamViewSet.as_view({"get": "retrieve"}), name="stream-session"),
]
