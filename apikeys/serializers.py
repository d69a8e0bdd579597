from django.utils import timezone
from rest_framework import serializers

from apikeys.keys import PERMISSIONS
from apikeys.models import APIKey, APIKeyStatus
from logfleet.api.fields import UTCDateTimeField

MAX_GRACE_SECONDS = 604800


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


class APIKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=128)
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=PERMISSIONS), min_length=1, max_length=len(PERMISSIONS) * 2
    )
    expires_at = UTCDateTimeField(required=False, allow_null=True)

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value


class APIKeyCreatedSerializer(serializers.Serializer):
    api_key = APIKeySerializer()
    raw_key = serializers.CharField(help_text="The key itself. Shown only in this answer: store it now.")


class APIKeyRotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(min_value=0, max_value=MAX_GRACE_SECONDS, default=86400)


class PreviousKeySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    expires_at = serializers.DateTimeField()


class APIKeyRotatedSerializer(APIKeyCreatedSerializer):
    previous = PreviousKeySerializer()


class APIKeyFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=APIKeyStatus.choices, required=False)
