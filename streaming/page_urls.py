from django.urls import path

from streaming import pages

urlpatterns = [
    path("live", pages.live, name="page-live"),
    path("live/<uuid:session_id>", pages.tail, name="page-live-tail"),
    path("live/<uuid:session_id>/stop", pages.stop, name="page-live-stop"),
]
