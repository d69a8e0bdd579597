from django.contrib import admin

from streaming.models import StreamSession


@admin.register(StreamSession)
class StreamSessionAdmin(admin.ModelAdmin):
    """The history of who watched which agent; sessions start and stop through the API."""

    list_display = ["id", "agent", "organization", "status", "end_reason", "started_at", "stopped_at", "lines_sent"]
    list_filter = ["status", "end_reason"]
    list_select_related = ["agent", "organization", "created_by"]
    search_fields = ["id", "agent__name", "organization__name", "created_by__email"]
    readonly_fields = [field.name for field in StreamSession._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
