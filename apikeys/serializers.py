from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apikeys import services
from apikeys.keys import PERMISSIONS
from apikeys.models import APIKey, APIKeyStatus
from logfleet.api.fields import UTCDateTimeField


class APIKeySerializer(serializers.ModelSerializer):
    organization_id = serializers.UUIDField(read_only=True)
    status = serializers.ChoiceField(choices=APIKeyStatus.choices, read_only=True)
    permissions = serializers.ListField(child=serializers.ChoiceField(choices=PERMISSIONS), read_only=True)
    created_by = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)
    replaces = serializers.UUIDField(source="replaces_id", read_only=True, allow_null=True)

    class Meta:
        model = APIKey
        fields = [
            "id",
            "organization_id",
            "name",
            "key_prefix",
            "permissions",
            "status",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "created_by",
            "replaces",
            "created_at",
        ]
        read_only_fields = fields


# A key's name and expiry, and a rotation's grace, are shaped here and checked by their one rule in
# apikeys.services (its Invalid goes to the exception handler); the schema states that rule.
@extend_schema_field({"type": "string", "minLength": 1, "maxLength": services.NAME_MAX_LENGTH})
class KeyNameField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)


@extend_schema_field({"type": "integer", "maximum": services.MAX_GRACE_SECONDS, "minimum": 0})
class GraceField(serializers.IntegerField):
    pass


class APIKeyCreateSerializer(serializers.Serializer):
    name = KeyNameField()
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=PERMISSIONS), min_length=1, max_length=len(PERMISSIONS) * 2
    )
    expires_at = UTCDateTimeField(required=False, allow_null=True)


class APIKeyCreatedSerializer(serializers.Serializer):
    api_key = APIKeySerializer()
    raw_key = serializers.CharField(help_text="The key itself. Shown only in this answer: store it now.")


class APIKeyRotateSerializer(serializers.Serializer):
    grace_seconds = GraceField(default=services.DEFAULT_GRACE_SECONDS)


class PreviousKeySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    expires_at = serializers.DateTimeField()


class APIKeyRotatedSerializer(APIKeyCreatedSerializer):
    previous = PreviousKeySerializer()


class APIKeyFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=APIKeyStatus.choices, required=False)
