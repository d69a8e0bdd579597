import re

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
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
from logfleet.api.fields import json_schema_pattern


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


# Shapes, as the schema states them; a channel's rules (the URL's SSRF guard, Django's email validator,
# the selector, names unique) are services.notification_channel_check's, whoever writes (the API, the
# dashboard). A create is one of two shapes chosen by `kind` (a `oneOf` with a discriminator in the
# schema): a webhook has a `url` (its `email` empty if given), an email channel an `email` (its `url`
# empty if given). Read-only keys (`id`, `secret`...) are ignored, as on every writable resource.
@extend_schema_field({"type": "string", "minLength": 1, "maxLength": services.NAME_MAX_LENGTH})
class ChannelNameField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)


WEBHOOK_URL_RE = re.compile(r"^[hH][tT][tT][pP][sS]?://\S+\Z")
URL_MESSAGES = {
    "required": "is required for a webhook channel",
    "blank": "is required for a webhook channel",
    "invalid": "must be an http:// or https:// URL, without spaces",
}
EMAIL_MESSAGES = {
    "required": "is required for an email channel",
    "blank": "is required for an email channel",
    "invalid": "must be a valid email address",
}


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": services.URL_MAX_LENGTH,
        "pattern": json_schema_pattern(WEBHOOK_URL_RE),
        "description": "http:// or https://, not resolving to a loopback, private, link-local or multicast "
        "address (unless WEBHOOK_ALLOW_PRIVATE=true)",
    }
)
class WebhookURLField(serializers.RegexField):
    def __init__(self, **kwargs):
        kwargs.setdefault("error_messages", URL_MESSAGES)
        super().__init__(WEBHOOK_URL_RE, max_length=services.URL_MAX_LENGTH, trim_whitespace=False, **kwargs)


def _email_field(**kwargs) -> serializers.EmailField:
    # Not trimmed: the schema's `format: email` refuses spaces around the address, and so does the server.
    return serializers.EmailField(
        max_length=services.EMAIL_MAX_LENGTH, trim_whitespace=False, error_messages=EMAIL_MESSAGES, **kwargs
    )


def _events_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS),
        min_length=1,
        max_length=len(SUBSCRIBABLE_EVENTS) * 2,
        **kwargs,
    )


def _other_kinds_field(message: str) -> serializers.CharField:
    """The other kind's address: empty if given (`maxLength: 0` in the schema)."""
    return serializers.CharField(
        required=False, allow_blank=True, max_length=0, trim_whitespace=False, error_messages={"max_length": message}
    )


SELECTOR_HELP = "Labels an agent must all have for its events to reach this channel; {} = every agent"


class WebhookChannelCreateSerializer(serializers.Serializer):
    name = ChannelNameField()
    kind = serializers.ChoiceField(choices=[ChannelKind.WEBHOOK.value])
    url = WebhookURLField()
    email = _other_kinds_field("is only for email channels")
    events = _events_field()
    agent_selector = LabelsField(required=False, help_text=SELECTOR_HELP)
    enabled = serializers.BooleanField(default=True)


class EmailChannelCreateSerializer(serializers.Serializer):
    name = ChannelNameField()
    kind = serializers.ChoiceField(choices=[ChannelKind.EMAIL.value])
    url = _other_kinds_field("is only for webhook channels")
    email = _email_field()
    events = _events_field()
    agent_selector = LabelsField(required=False, help_text=SELECTOR_HELP)
    enabled = serializers.BooleanField(default=True)


class ChannelKindSerializer(serializers.Serializer):
    """What a create is refused when its `kind` is missing or unknown (the 400 names `kind`)."""

    kind = serializers.ChoiceField(choices=ChannelKind.choices)


CREATE_SERIALIZERS = {
    ChannelKind.WEBHOOK.value: WebhookChannelCreateSerializer,
    ChannelKind.EMAIL.value: EmailChannelCreateSerializer,
}
NotificationChannelCreateSchema = PolymorphicProxySerializer(
    component_name="NotificationChannelCreate",
    serializers=CREATE_SERIALIZERS,
    resource_type_field_name="kind",
    many=False,
)


def create_serializer_for(data) -> type[serializers.Serializer]:
    """The closed shape of a create body, by its `kind`."""
    kind = data.get("kind") if isinstance(data, dict) else None
    return CREATE_SERIALIZERS.get(kind, ChannelKindSerializer) if isinstance(kind, str) else ChannelKindSerializer


class NotificationChannelUpdateSerializer(serializers.Serializer):
    """Only what is given changes; `url` is for a webhook channel, `email` for an email channel."""

    name = ChannelNameField(required=False)
    kind = serializers.ChoiceField(
        choices=ChannelKind.choices, required=False, help_text="Cannot change: the channel's own kind, or nothing"
    )
    url = WebhookURLField(required=False)
    email = _email_field(required=False)
    events = _events_field(required=False)
    agent_selector = LabelsField(required=False, help_text=SELECTOR_HELP)
    enabled = serializers.BooleanField(required=False)


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
