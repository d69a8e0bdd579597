from rest_framework import serializers

from logfleet.api.fields import ClosedSerializer
from streaming.models import SessionStatus, StreamSession

LEVEL_MAX = 32


class FiltersSerializer(ClosedSerializer):
    unknown_key_message = "unknown filter"

    level = serializers.ListField(child=serializers.CharField(max_length=LEVEL_MAX), required=False, max_length=16)
    source = serializers.CharField(required=False, allow_blank=True, max_length=64)
    pattern = serializers.CharField(required=False, allow_blank=True, max_length=1024, trim_whitespace=False)

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        return {key: value for key, value in values.items() if value not in ("", [], None)}


class StreamStartSerializer(serializers.Serializer):
    agent_id = serializers.UUIDField()
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=3600, default=300)
    filters = FiltersSerializer(required=False, default=dict)
    filter_query = serializers.CharField(required=False, allow_null=True, max_length=4096, default=None)


class StreamStopSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()


class StreamSessionSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(source="agent_ref")
    status = serializers.SerializerMethodField()
    created_by = serializers.UUIDField(source="created_by_ref", allow_null=True)
    filters = serializers.DictField()
    websocket_url = serializers.SerializerMethodField()

    class Meta:
        model = StreamSession
        fields = [
            "id",
            "agent_id",
            "status",
            "filters",
            "filter_query",
            "timeout_seconds",
            "started_at",
            "expires_at",
            "stopped_at",
            "end_reason",
            "created_by",
            "lines_sent",
            "lines_dropped",
            "bytes_sent",
            "websocket_url",
        ]
        read_only_fields = fields

    def get_status(self, session) -> str:
        return session.effective()[0]

    def to_representation(self, session):
        data = super().to_representation(session)
        # Over but not written down yet: shown as it will be written (streaming.models, effective()).
        _status, data["end_reason"], stopped_at = session.effective()
        data["stopped_at"] = serializers.DateTimeField().to_representation(stopped_at) if stopped_at else None
        return data

    def get_websocket_url(self, session) -> str:
        request = self.context["request"]
        scheme = "wss" if request.is_secure() else "ws"
        return f"{scheme}://{request.get_host()}/api/v1/stream/ws/{session.id}"


class StreamStartedSerializer(serializers.Serializer):
    """Both published shapes at once: top-level fields and `session`."""

    session_id = serializers.UUIDField()
    agent_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=SessionStatus.choices)
    websocket_url = serializers.CharField()
    session = StreamSessionSerializer()


class SessionFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
    agent_id = serializers.UUIDField(required=False)
