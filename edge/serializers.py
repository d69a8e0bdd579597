from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import AgentStatus
from agents.serializers import LabelsField, SourceStateSerializer
from metrics.models import MetricType


class AgentRegisterSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=128)
    hostname = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    os = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    labels = LabelsField(required=False, default=dict)


class ConfigErrorSerializer(serializers.Serializer):
    config_id = serializers.CharField(required=False, max_length=64)
    metric = serializers.CharField(required=False, max_length=128)
    message = serializers.CharField(max_length=1024)


class ConfigReportSerializer(serializers.Serializer):
    hash = serializers.CharField(max_length=64)
    state = serializers.ChoiceField(choices=["applied", "failed"])
    errors = ConfigErrorSerializer(many=True, required=False, max_length=100)


class HeartbeatSerializer(serializers.Serializer):
    """Documents the heartbeat body; validation is edge.heartbeat_body.parse (the same rules, faster)."""

    status = serializers.ChoiceField(choices=AgentStatus.choices)
    version = serializers.CharField(required=False, max_length=64)
    metrics = serializers.DictField(required=False, help_text="Host metrics (cpu, memory, disk, ...), ≤ 16 KiB")
    config_status = ConfigReportSerializer(required=False)
    sources = SourceStateSerializer(many=True, required=False, help_text="each log source's state (≤ 100)")


class CompatHeartbeatSerializer(HeartbeatSerializer):
    agent_id = serializers.UUIDField()


class StreamInstructionSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()
    action = serializers.ChoiceField(choices=["start", "stop"])
    filters = serializers.DictField()
    filter_query = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField()


class HeartbeatResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["acknowledged"])
    server_time = serializers.DateTimeField()
    config_hash = serializers.CharField()
    streams = StreamInstructionSerializer(many=True)


class SyncConfigSerializer(serializers.Serializer):
    hash = serializers.CharField(help_text="The agent's config_hash; also the ETag")
    agent_config = serializers.DictField()
    configs = serializers.ListField(child=serializers.DictField(), help_text="Enabled metric configs that select it")


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0}],
        "description": "ISO 8601 with an offset, or Unix seconds (a number)",
    }
)
class SampleTimeField(serializers.Field):
    """Documents a sample's time; metrics.ingest parses it."""


class SampleSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=MetricType.choices)
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    timestamp = SampleTimeField()
    value = serializers.FloatField(
        required=False, min_value=-1e200, max_value=1e200, help_text="counter increment or gauge value"
    )
    histogram = serializers.DictField(
        required=False,
        help_text='{count (0 to 10**12), sum (at most 1e200 in magnitude), buckets{le: cumulative count, "+Inf"}}',
    )


class MetricsPushSerializer(serializers.Serializer):
    batch_id = serializers.CharField(required=False, max_length=128)
    samples = SampleSerializer(many=True, max_length=10_000)


class SampleErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = serializers.CharField()


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = SampleErrorSerializer(many=True)
    duplicate = serializers.BooleanField()


class LogLineSerializer(serializers.Serializer):
    timestamp = serializers.CharField(required=False)
    level = serializers.CharField(required=False, max_length=32)
    message = serializers.CharField(help_text="cut to 65 536 bytes of UTF-8 (the line then has truncated: true)")
    source = serializers.CharField(required=False, max_length=64)
    metadata = serializers.DictField(
        required=False,
        help_text=(
            "at most 32 keys per object (and items per list), 4 levels deep and 8 KiB as JSON; what is "
            "over is cut (the first keys are kept) and the line then has metadata_truncated: true"
        ),
    )


class StreamPushSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()
    logs = LogLineSerializer(many=True, max_length=1000)


class StreamPushResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    filtered = serializers.IntegerField()
    dropped = serializers.IntegerField()
    session_status = serializers.CharField()
