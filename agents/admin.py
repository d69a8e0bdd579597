from django import forms
from django.contrib import admin, messages

from agents import services
from agents.models import (
    Agent,
    AgentAnnouncement,
    KeyAnnouncement,
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from agents.notifications import services as notification_services
from logfleet.admin_site import take_over
from logfleet.errors import DomainError, add_to_form


class AgentChangeForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = ["organization", "name", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Shown, not changed; a field of the form all the same, so the name is checked unique in it.
        self.fields["organization"].disabled = True


class AgentAddForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = ["organization", "name", "description"]

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        if organization is not None:
            # The admin saves in the same transaction, which keeps the organization locked.
            try:
                services.agent_quota_check(organization_id=organization.pk)
            except DomainError as exc:
                add_to_form(self, exc)
        return cleaned


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
    # Labels and config change through the API, which checks them and refreshes the config hash; the
    # rest is what the agent reports. Name and description are written through the agents service.
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
        "source_states",
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
    fields = ["id", *AgentChangeForm.Meta.fields, *readonly_fields[1:]]

    def get_queryset(self, request):
        return super().get_queryset(request).with_status()

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = AgentAddForm if obj is None else AgentChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return AgentAddForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    @admin.display(description="status", ordering="status")
    def agent_status(self, obj):
        return obj.status

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in ("name", "description")}
        if change:
            agent = services.agent_update(agent=Agent.objects.get(pk=obj.pk), actor=request.user, **fields)
        else:
            agent = services.agent_create(organization=form.cleaned_data["organization"], actor=request.user, **fields)
        take_over(obj, agent)


# --- notifications: read-mostly; channels are written through the API (or the dashboard), which
# checks their URL and audits the change. A secret never shows.


class NotificationAttemptInline(admin.TabularInline):
    model = NotificationAttempt
    extra = 0
    can_delete = False
    fields = ["number", "attempted_at", "duration_ms", "response_status", "error", "response_body"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ReadOnlyAdmin):
    list_display = ["name", "organization", "kind", "enabled", "created_at", "updated_at"]
    list_filter = ["kind", "enabled"]
    list_select_related = ["organization"]
    search_fields = ["name", "url", "email", "organization__name", "id"]
    fields = [
        "id",
        "organization",
        "name",
        "kind",
        "url",
        "email",
        "events",
        "agent_selector",
        "enabled",
        "created_by",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    actions = ["disable_channels"]

    @admin.action(description="Disable the selected channels")
    def disable_channels(self, request, queryset):
        for channel in queryset.select_related("organization"):
            notification_services.notification_channel_update(channel=channel, actor=request.user, enabled=False)
        self.message_user(request, f"Disabled {queryset.count()} channel(s).", messages.SUCCESS)


@admin.register(NotificationEvent)
class NotificationEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "organization", "agent", "occurred_at"]
    list_filter = ["type", "occurred_at"]
    list_select_related = ["organization", "agent"]
    search_fields = ["id", "agent__name", "organization__name"]
    readonly_fields = ["id", "organization", "type", "occurred_at", "agent", "api_key", "payload"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["event", "channel", "status", "attempts", "response_status", "created_at", "delivered_at"]
    list_filter = ["status", "created_at"]
    list_select_related = ["event", "channel"]
    search_fields = ["id", "event__id", "channel__name"]
    readonly_fields = [
        "id",
        "channel",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "response_status",
        "error",
        "response_body",
        "created_at",
        "delivered_at",
    ]
    inlines = [NotificationAttemptInline]


@admin.register(NotificationAttempt)
class NotificationAttemptAdmin(ReadOnlyAdmin):
    list_display = ["delivery", "number", "attempted_at", "response_status", "duration_ms"]
    list_filter = ["attempted_at"]
    list_select_related = ["delivery"]
    search_fields = ["delivery__id"]
    readonly_fields = ["delivery", "number", "attempted_at", "duration_ms", "response_status", "error", "response_body"]


@admin.register(AgentAnnouncement)
class AgentAnnouncementAdmin(ReadOnlyAdmin):
    """What `manage.py sendalerts` last announced of each agent."""

    list_display = ["agent", "status", "config_failed_hash", "updated_at"]
    list_filter = ["status"]
    list_select_related = ["agent"]
    search_fields = ["agent__name", "agent__id"]
    readonly_fields = ["agent", "status", "config_failed_hash", "updated_at"]


@admin.register(KeyAnnouncement)
class KeyAnnouncementAdmin(ReadOnlyAdmin):
    """The expiry `manage.py sendalerts` last announced of each API key."""

    list_display = ["api_key", "expiring_for", "updated_at"]
    list_filter = ["updated_at"]
    list_select_related = ["api_key"]
    search_fields = ["api_key__name", "api_key__key_prefix"]
    readonly_fields = ["api_key", "expiring_for", "updated_at"]
