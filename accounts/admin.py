from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import AuditEvent, AuthSession, Organization, PasswordToken, User

EMAIL_MAX_LENGTH = User._meta.get_field("email").max_length


class EmailAsStoredMixin:
    """Emails are stored lower-case (User.save), so the form checks the email as it will be stored:
    the model form's own unique check compares the case typed, and `Ann@x.org` beside `ann@x.org`
    would reach the database's unique index (a 500 instead of a message beside the field)."""

    def clean_email(self):
        email = self.cleaned_data["email"].lower()
        if len(email) > EMAIL_MAX_LENGTH:
            raise forms.ValidationError(f"Ensure this value has at most {EMAIL_MAX_LENGTH} characters.")
        if User.objects.filter(email=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A user with this email already exists.")
        return email


class UserAddForm(EmailAsStoredMixin, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ["email"]
        field_classes = {}


class UserChangeAdminForm(EmailAsStoredMixin, UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"
        field_classes = {}


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug", "id"]
    list_filter = ["created_at"]
    readonly_fields = ["id", "created_at"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserAddForm
    ordering = ["email"]
    list_display = ["email", "name", "organization", "role", "status", "is_staff", "last_login", "created_at"]
    list_filter = ["role", "status", "is_staff", "is_superuser"]
    list_select_related = ["organization"]
    search_fields = ["email", "name", "organization__name", "id"]
    readonly_fields = ["id", "created_at", "last_login"]
    autocomplete_fields = ["organization"]
    fieldsets = [
        (None, {"fields": ["id", "email", "password"]}),
        ("Profile", {"fields": ["name", "organization", "role", "status"]}),
        ("Django admin access", {"fields": ["is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "created_at"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "name", "organization", "role", "password1", "password2"]})
    ]
    filter_horizontal = ["groups", "user_permissions"]


@admin.register(AuthSession)
class AuthSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "created_at", "refreshed_at", "ended_at", "end_reason"]
    list_filter = ["end_reason", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__email", "id"]
    readonly_fields = ["id", "user", "refresh_jti", "created_at", "refreshed_at"]
    exclude = ["refresh_jti"]

    def has_add_permission(self, request):
        return False  # a session is made by a login, with its tokens


@admin.register(PasswordToken)
class PasswordTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "purpose", "created_at", "expires_at", "used_at"]
    list_filter = ["purpose"]
    list_select_related = ["user"]
    search_fields = ["user__email"]
    readonly_fields = ["id", "user", "purpose", "created_at", "expires_at", "used_at"]
    exclude = ["token_hash"]

    def has_add_permission(self, request):
        return False  # a token is made by a reset request or an invitation, which sends it


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "organization",
        "action",
        "actor_type",
        "actor_email",
        "target_type",
        "target_id",
        "ip_address",
    ]
    list_filter = ["action", "actor_type", "created_at"]
    list_select_related = ["organization"]
    search_fields = ["action", "actor_email", "target_id", "organization__name"]
    readonly_fields = [
        "id",
        "organization",
        "action",
        "actor_type",
        "actor_id",
        "actor_email",
        "target_type",
        "target_id",
        "metadata",
        "ip_address",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
