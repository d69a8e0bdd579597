import json

from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.html import format_html

from agents.labels import clean_labels
from logfleet.errors import Conflict, Invalid
from metrics import services
from metrics.models import LOG_SOURCE_RE, MetricBatch, MetricConfig, Rollup, Sample, Series


class MetricConfigAddForm(forms.ModelForm):
    """A new config, checked as the API checks it: its rules by the service's one check (each problem
    beside `metrics`, named as the API's details name it), saved by the service."""

    log_source = forms.RegexField(
        LOG_SOURCE_RE,
        max_length=64,
        initial="*",
        error_messages={"invalid": "must be * or 1 to 64 of a-z, 0-9, _ and -"},
    )
    # Not required here: an empty list is the rule check's to refuse ("a config has 1 to 50 rules").
    metrics = forms.JSONField(required=False, help_text="the rules, as the API takes them (API.md section 5)")

    class Meta:
        model = MetricConfig
        fields = ["organization", "name", "description", "log_source", "enabled", "agent_selector", "metrics"]

    def clean_agent_selector(self):
        try:
            return clean_labels(self.cleaned_data.get("agent_selector") or {})
        except Invalid as exc:
            raise forms.ValidationError(list(exc.details.values())) from None

    def clean_metrics(self):
        try:
            normalized, _rules = services.metric_rules_compile(metrics=self.cleaned_data.get("metrics"))
        except Invalid as exc:
            raise forms.ValidationError([f"{field}: {problem}" for field, problem in exc.details.items()]) from None
        return normalized

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        if organization is not None:
            # The admin saves in the same transaction, which keeps the organization locked.
            try:
                services.metric_config_quota_check(organization=organization)
            except Conflict as exc:
                raise forms.ValidationError(exc.message) from None
        if organization is not None and cleaned.get("metrics"):
            try:
                services.metric_rules_collision_check(organization_id=organization.pk, metrics=cleaned["metrics"])
            except Invalid as exc:
                self.add_error("metrics", [f"{field}: {problem}" for field, problem in exc.details.items()])
        return cleaned


@admin.register(MetricConfig)
class MetricConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "log_source", "enabled", "version", "updated_at"]
    list_filter = ["enabled", "log_source"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name", "id"]
    # A config changes through the API (optimistic locking); the add form goes through the service,
    # which checks the rules and refreshes every agent's config hash.
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

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MetricConfigAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return MetricConfigAddForm.Meta.fields if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return  # every field of a config is read-only here
        config = services.metric_config_create(
            actor=request.user, **{name: form.cleaned_data[name] for name in MetricConfigAddForm.Meta.fields}
        )
        # The admin goes on with `obj` (its log entry, the redirect): make it the created config.
        obj.__dict__.update({name: value for name, value in config.__dict__.items() if not name.startswith("_")})
        obj._state.adding = False

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
