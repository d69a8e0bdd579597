from django import forms
from django.contrib import admin, messages

from apikeys import services
from apikeys.keys import PERMISSIONS
from apikeys.models import APIKey
from logfleet.admin_site import take_over
from logfleet.errors import DomainError, add_to_form


class KeyNameField(forms.CharField):
    """A key's name, checked by the service's rule (services.api_key_check) in the form's clean, so
    that the admin says what the API and the shell say: the field itself checks nothing, and its
    length only sizes the input."""

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)
        self.validators = []
        self.max_length = services.NAME_MAX_LENGTH
        self.widget.attrs["maxlength"] = str(self.max_length)


class APIKeyAddForm(forms.ModelForm):
    name = KeyNameField()
    permissions = forms.MultipleChoiceField(choices=[(p, p) for p in PERMISSIONS], widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = APIKey
        fields = ["organization", "name", "permissions", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        try:
            cleaned["name"], cleaned["expires_at"] = services.api_key_check(
                name=cleaned["name"], expires_at=cleaned.get("expires_at")
            )
        except DomainError as exc:
            add_to_form(self, exc)
        if organization is not None:
            # The admin saves in the same transaction, which keeps the organization locked.
            try:
                services.api_key_quota_check(organization=organization)
            except DomainError as exc:
                add_to_form(self, exc)
        return cleaned


class APIKeyChangeForm(forms.ModelForm):
    name = KeyNameField()

    class Meta:
        model = APIKey
        fields = ["name"]

    def clean(self):
        cleaned = super().clean()
        try:
            cleaned["name"], _ = services.api_key_check(name=cleaned["name"])
        except DomainError as exc:
            add_to_form(self, exc)
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
        kwargs["form"] = APIKeyAddForm if obj is None else APIKeyChangeForm
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
            take_over(obj, services.api_key_rename(key=APIKey.objects.get(pk=obj.pk), name=form.cleaned_data["name"]))
            return
        key, raw = services.api_key_create(
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            permissions=form.cleaned_data["permissions"],
            expires_at=form.cleaned_data.get("expires_at"),
            actor=services.Actor(user=request.user),
        )
        take_over(obj, key)
        messages.warning(request, f"The new key is {raw} — copy it now; it will not be shown again.")

    @admin.action(description="Revoke the selected API keys")
    def revoke_keys(self, request, queryset):
        for key in queryset.select_related("organization"):
            services.api_key_revoke(key=key, actor=services.Actor(user=request.user))
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
