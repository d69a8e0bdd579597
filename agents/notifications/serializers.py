from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import (
    SUBSCRIBABLE_EVENTS,
    ChannelKind,
    DeliveryStatus,
    EventType,
    NotificationChannel,
    NotificationDelivery,
)
from agents.notifications import services
from agents.serializers import LabelsField


class LastDeliverySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    at = serializers.DateTimeField(help_text="When it was delivered, last tried, or created")


class NotificationChannelSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS), read_only=True)
    agent_selector = serializers.DictField(child=serializers.CharField(), read_only=True)
    last_delivery = serializers.SerializerMethodField()

    class Meta:
        model = NotificationChannel
        fields = [
            "id",
            "name",
            "kind",
            "url",
            "email",
            "events",
            "agent_selector",
            "enabled",
            "created_at",
            "updated_at",
            "last_delivery",
        ]
        read_only_fields = fields

    @extend_schema_field(LastDeliverySerializer(allow_null=True))
    def get_last_delivery(self, channel):
        status = getattr(channel, "last_delivery_status", None)
        if status is None:
            return None
        return LastDeliverySerializer({"status": status, "at": channel.last_delivery_at}).data


class NotificationChannelCreatedSerializer(NotificationChannelSerializer):
    secret = serializers.CharField(
        allow_null=True,
        read_only=True,
        help_text="The webhook's signing secret (`whsec_...`), shown only in this answer: store it now. "
        "null for an email channel.",
    )

    class Meta(NotificationChannelSerializer.Meta):
        fields = [*NotificationChannelSerializer.Meta.fields, "secret"]
        read_only_fields = fields


# Shapes only; a channel's rules (URL and its SSRF guard, email, events, selector, names) are
# services.notification_channel_check's, whoever writes (the API, the dashboard).
@extend_schema_field({"type": "string", "minLength": 1, "maxLength": services.NAME_MAX_LENGTH})
class ChannelNameField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)


class NotificationChannelWriteSerializer(serializers.Serializer):
    name = ChannelNameField()
    kind = serializers.ChoiceField(choices=ChannelKind.choices, help_text="Cannot change once created")
    url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=services.URL_MAX_LENGTH,
        help_text="webhook only: http:// or https://, not resolving to a loopback, private, link-local or "
        "multicast address (unless WEBHOOK_ALLOW_PRIVATE=true)",
    )
    email = serializers.CharField(
        required=False, allow_blank=True, max_length=services.EMAIL_MAX_LENGTH, help_text="email only"
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS),
        min_length=1,
        max_length=len(SUBSCRIBABLE_EVENTS) * 2,
    )
    agent_selector = LabelsField(
        required=False, help_text="Labels an agent must all have for its events to reach this channel; {} = every agent"
    )
    enabled = serializers.BooleanField(default=True)


class NotificationDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(read_only=True, help_text="The webhook's `id` and X-LogFleet-Delivery")
    event = serializers.ChoiceField(choices=EventType.choices, source="event.type", read_only=True)

    class Meta:
        model = NotificationDelivery
        fields = [
            "id",
            "event_id",
            "event",
            "status",
            "attempts",
            "response_status",
            "error",
            "created_at",
            "delivered_at",
            "last_attempt_at",
            "next_attempt_at",
        ]
        read_only_fields = fields
