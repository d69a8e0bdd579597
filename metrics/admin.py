import json

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.html import format_html

from metrics.models import MetricBatch, MetricConfig, Rollup, Sample, Series


@admin.register(MetricConfig)
class MetricConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "log_source", "enabled", "version", "updated_at"]
    list_filter = ["enabled", "log_source"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name", "id"]
    # Rules change through the API, which validates them and refreshes every agent's config hash.
    readonly_fields = [
        "id",
        "organization",
        "name",
        "description",
        "log_source",
        "enabled",
        "agent_selector",
        "rules",
        "version",
        "hash",
        "created_by",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request):
        return False

    @admin.display(description="rules")
    def rules(self, config):
        return format_html("<pre>{}</pre>", json.dumps(config.metrics, indent=2, ensure_ascii=False))


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ["name", "label_set", "type", "agent", "organization", "last_sample_at", "created_at"]
    list_filter = ["type"]
    list_select_related = ["agent", "organization"]
    search_fields = ["name", "agent__name", "organization__name"]
    readonly_fields = [field.name for field in Series._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(description="labels")
    def label_set(self, series):
        """What tells the series of one name apart."""
        return ", ".join(f"{key}={value}" for key, value in sorted(series.labels.items())) or "(none)"


@admin.register(MetricBatch)
class MetricBatchAdmin(admin.ModelAdmin):
    list_display = ["batch_id", "agent", "accepted", "received_at"]
    list_filter = ["received_at"]
    list_select_related = ["agent"]
    search_fields = ["batch_id", "agent__name"]
    readonly_fields = ["agent", "batch_id", "accepted", "received_at"]

    def has_add_permission(self, request):
        return False


class BoundedCountPaginator(Paginator):
    """Samples and rollups run to millions of rows: count at most the first 10 000 pages' worth."""

    @cached_property
    def count(self):
        return self.object_list[: self.per_page * 10_000].count()


class LargeTableAdmin(admin.ModelAdmin):
    """Read-only, newest first, without a full COUNT(*) of the table."""

    paginator = BoundedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Sample)
class SampleAdmin(LargeTableAdmin):
    list_display = ["id", "series", "ts", "value", "count"]
    list_select_related = ["series"]
    search_fields = ["=series__id"]
    list_filter = []
    readonly_fields = [field.name for field in Sample._meta.fields]
    ordering = ["-id"]


@admin.register(Rollup)
class RollupAdmin(LargeTableAdmin):
    list_display = ["name", "agent", "organization", "minute", "count", "sum", "min", "max"]
    list_select_related = ["agent", "organization"]
    search_fields = ["name", "agent__name"]
    list_filter = []
    readonly_fields = [field.name for field in Rollup._meta.fields]
    ordering = ["-id"]
