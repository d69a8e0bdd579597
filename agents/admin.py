from django.contrib import admin

from agents.models import Agent


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "agent_status",
        "hostname",
        "version",
        "last_heartbeat_at",
        "config_version",
        "created_at",
    ]
    list_filter = ["reported_status", "os", "created_at"]
    list_select_related = ["organization"]
    search_fields = ["name", "hostname", "organization__name", "id"]
    # Labels and config change through the API, which validates them and refreshes the config hash.
    readonly_fields = [
        "id",
        "labels",
        "config",
        "reported_status",
        "version",
        "hostname",
        "os",
        "ip_address",
        "system_metrics",
        "last_heartbeat_at",
        "registered_at",
        "registered_by_key",
        "config_version",
        "config_updated_at",
        "config_hash",
        "applied_config_hash",
        "config_report_hash",
        "config_report_state",
        "config_errors",
        "created_at",
        "updated_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).with_status()

    @admin.display(description="status", ordering="status")
    def agent_status(self, obj):
        return obj.status
