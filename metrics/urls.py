from django.urls import path
from rest_framework.routers import SimpleRouter

from metrics import views

router = SimpleRouter(trailing_slash=False)
router.register("metric-configs", views.MetricConfigViewSet, basename="metric-config")

urlpatterns = [
    *router.urls,
    path("metrics/names", views.MetricNamesView.as_view(), name="metric-names"),
    path("metrics/series", views.SeriesListView.as_view(), name="metric-series"),
    path("metrics/query", views.MetricQueryView.as_view(), name="metric-query"),
    path("metrics/export", views.MetricsExportView.as_view(), name="metric-export"),
    path("dashboard/summary", views.DashboardSummaryView.as_view(), name="dashboard-summary"),
]
