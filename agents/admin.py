from django import forms
from django.contrib import admin

from agents import services
from agents.models import Agent
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
