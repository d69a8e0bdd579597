from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from logfleet import views

api_v1 = [
    # The Edge API first: it is the hot path (a heartbeat per agent every 30 s), and Django's resolver
    # tries the includes in order, recording every pattern that failed.
    path("", include("edge.urls")),
    path("", include("accounts.urls")),
    path("", include("apikeys.urls")),
    path("", include("agents.urls")),
    path("", include("metrics.urls")),
    path("", include("streaming.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("docs/", RedirectView.as_view(pattern_name="docs", permanent=True)),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("healthz", views.HealthView.as_view(), name="healthz"),
    path("readyz", views.ReadyView.as_view(), name="readyz"),
    path("admin", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # The dashboard (UI.md): each app's pages.
    path("", include("accounts.page_urls")),
    path("", include("apikeys.page_urls")),
    path("", include("agents.page_urls")),
    path("", include("streaming.page_urls")),
    path("", include("metrics.page_urls")),
    # Anything else is a JSON 404 in the error envelope, also with DEBUG=true.
    re_path(r"^(?!admin/|static/).*$", views.not_found),
]

handler400 = "logfleet.views.bad_request"
handler403 = "logfleet.views.permission_denied"
handler404 = "logfleet.views.not_found"
handler500 = "logfleet.views.server_error"
