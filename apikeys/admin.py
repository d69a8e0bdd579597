from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from apikeys import services
from apikeys.keys import PERMISSIONS
from apikeys.models import APIKey
from logfleet.errors import Conflict


class APIKeyAddForm(forms.ModelForm):
    permissions = forms.MultipleChoiceField(choices=[(p, p) for p in PERMISSIONS], widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = APIKey
        fields = ["organization", "name", "permissions", "expires_at"]

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("must be in the future")
        return value

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        if organization is not None:
            # The admin saves in the same transaction, which keeps the organization locked.
            try:
                services.api_key_quota_check(organization=organization)
            except Conflict as exc:
                raise forms.ValidationError(exc.message) from None
        return cleaned


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "organization", "status", "last_used_at", "expires_at", "created_at"]
    list_filter = ["created_at", "revoked_at", "expires_at"]
    list_select_related = ["organization"]
    search_fields = ["name", "key_prefix", "organization__name", "organization__slug", "id"]
    readonly_fields = [
        "id",
        "organization",
        "key_prefix",
        "permissions",
        "status",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "created_by",
        "replaces",
        "created_at",
    ]
    fields = [*readonly_fields[:2], "name", *readonly_fields[2:]]
    actions = ["revoke_keys"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = APIKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return APIKeyAddForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    @admin.display(description="status")
    def status(self, obj):
        return obj.status

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw = services.api_key_create(
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            permissions=form.cleaned_data["permissions"],
            expires_at=form.cleaned_data.get("expires_at"),
            actor=services.Actor(user=request.user),
        )
        # The admin goes on with `obj` (its log entry, the redirect): make it the created key.
        obj.__dict__.update({name: value for name, value in key.__dict__.items() if not name.startswith("_")})
        obj._state.adding = False
        messages.warning(request, f"The new key is {raw} — copy it now; it will not be shown again.")

    @admin.action(description="Revoke the selected API keys")
    def revoke_keys(self, request, queryset):
        for key in queryset.select_related("organization"):
            services.api_key_revoke(key=key, actor=services.Actor(user=request.user))
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
