import uuid

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import AUDIT_ACTIONS, AuditEvent, Organization, Role, User, UserStatus
from logfleet.api.fields import UTCDateTimeField

# Bounds the work of hashing (Argon2) whatever a client sends.
PASSWORD_MAX_LENGTH = 256


class PasswordField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", PASSWORD_MAX_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("write_only", True)
        kwargs.setdefault("style", {"input_type": "password"})
        super().__init__(**kwargs)


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["id", "slug", "created_at"]
        extra_kwargs = {"name": {"min_length": 1, "max_length": 150}}


class OrganizationBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug"]


class UserBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "role"]


class MemberSerializer(serializers.ModelSerializer):
    last_login_at = serializers.DateTimeField(source="last_login", read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "status", "created_at", "last_login_at"]


class MeSerializer(serializers.Serializer):
    user = UserBriefSerializer()
    organization = OrganizationBriefSerializer()


class SessionSerializer(MeSerializer):
    """What register and login answer: the tokens of a new session, the user and the organization."""

    token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Lifetime of `token` in seconds")
    refresh_token = serializers.CharField()


class TokenPairSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_in = serializers.IntegerField()
    refresh_token = serializers.CharField()


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class RegisterSerializer(serializers.Serializer):
    organization_name = serializers.CharField(min_length=1, max_length=150)
    email = serializers.EmailField(max_length=254)
    password = PasswordField()
    name = serializers.CharField(min_length=1, max_length=150)


class LoginSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = PasswordField()


class RefreshSerializer(serializers.Serializer):
    # A token is taken as sent (no trimming): a mangled one is a 401, not a blank field.
    refresh_token = serializers.CharField(max_length=2048, trim_whitespace=False)


class ForgotPasswordSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class ResetPasswordSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=256, trim_whitespace=False)
    new_password = PasswordField()


class ChangePasswordSerializer(serializers.Serializer):
    current_password = PasswordField()
    new_password = PasswordField()


class ProfileUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=150, required=False)


class MemberInviteSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(min_length=1, max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    status = serializers.ChoiceField(choices=[UserStatus.ACTIVE, UserStatus.DEACTIVATED], required=False)


class AuditEventFilterSerializer(serializers.Serializer):
    action = serializers.CharField(required=False, max_length=64, help_text="Exact action, e.g. `auth.login`")
    actor = serializers.UUIDField(required=False, help_text="User id of the actor")
    since = UTCDateTimeField(required=False, help_text="Only events at or after this time (with an offset)")


class AuditPageFilterSerializer(AuditEventFilterSerializer):
    """The audit filters as the dashboard takes them: one of the known actions (a select), and the
    actor by email (what people know each other by) or by id (what the API takes)."""

    action = serializers.ChoiceField(choices=AUDIT_ACTIONS, required=False)
    actor = serializers.CharField(required=False, max_length=254)

    def validate_actor(self, value: str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
        if "@" not in value:
            raise serializers.ValidationError("must be an email or an id")
        return value


class AuditActorSerializer(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True)
    email = serializers.CharField()


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "action",
            "actor_type",
            "actor",
            "target_type",
            "target_id",
            "metadata",
            "ip_address",
            "created_at",
        ]

    @extend_schema_field(AuditActorSerializer(allow_null=True))
    def get_actor(self, event):
        if event.actor_id is None and not event.actor_email:
            return None
        return {"id": str(event.actor_id) if event.actor_id else None, "email": event.actor_email}
