import re

from rest_framework import serializers

from agents import config as agent_config
from agents import selectors
from agents.models import SOURCE_STATES, Agent, AgentStatus, ConfigStatus
from logfleet.api.fields import VersionField

MAX_LABELS = 32
LABEL_KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]{0,62}\Z")
LABEL_VALUE_MAX = 256


def validate_labels(value) -> dict:
    if not isinstance(value, dict):
        raise serializers.ValidationError("must be an object of string keys and string values")
    if len(value) > MAX_LABELS:
        raise serializers.ValidationError(f"at most {MAX_LABELS} labels")
    for key, label in value.items():
        if not LABEL_KEY_RE.match(key):
            raise serializers.ValidationError(f"label key {key[:70]!r} must match [a-zA-Z_][a-zA-Z0-9_.-]{{0,62}}")
        if not isinstance(label, str) or len(label) > LABEL_VALUE_MAX:
            raise serializers.ValidationError(f"label {key!r} must be a string of at most {LABEL_VALUE_MAX} characters")
    return value


class LabelsField(serializers.JSONField):
    def __init__(self, **kwargs):
        kwargs.setdefault("validators", [validate_labels])
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        return validate_labels(value)


class SourceStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    state = serializers.ChoiceField(choices=SOURCE_STATES, help_text="reading, or why the file is not being read")
    lines = serializers.IntegerField(help_text="lines read since the agent started")
    bytes = serializers.IntegerField(help_text="bytes read since the agent started")
    error = serializers.CharField(required=False)


class AgentSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=AgentStatus.choices, read_only=True)
    config_status = serializers.ChoiceField(choices=ConfigStatus.choices, read_only=True)
    labels = serializers.DictField(child=serializers.CharField(), read_only=True)
    reported_status = serializers.ChoiceField(choices=AgentStatus.choices, read_only=True, allow_null=True)
    system_metrics = serializers.DictField(read_only=True)
    applied_config_hash = serializers.CharField(read_only=True, allow_null=True)
    sources = SourceStateSerializer(source="source_states", many=True, read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "description",
            "labels",
            "status",
            "reported_status",
            "version",
            "hostname",
            "os",
            "ip_address",
            "system_metrics",
            "last_heartbeat_at",
            "config_version",
            "config_hash",
            "applied_config_hash",
            "config_status",
            "sources",
            "registered_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AgentWriteSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=128)
    description = serializers.CharField(max_length=1024, required=False, allow_blank=True)
    labels = LabelsField(required=False)


class LogSourceOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    format = serializers.ChoiceField(choices=["text", "json"])


class AgentConfigBodySerializer(serializers.Serializer):
    log_sources = LogSourceOutSerializer(many=True)
    heartbeat_interval_seconds = serializers.IntegerField(min_value=5, max_value=300)
    metrics_interval_seconds = serializers.IntegerField(min_value=10, max_value=3600)
    retention_hours = serializers.IntegerField(min_value=1, max_value=8760)


class AgentConfigVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    hash = serializers.CharField(help_text="SHA-256 of the config's canonical JSON")
    config = AgentConfigBodySerializer()
    updated_at = serializers.DateTimeField()


class AgentConfigUpdateSerializer(serializers.Serializer):
    version = VersionField()
    config = agent_config.AgentConfigValidator()


class AgentFilterSerializer(serializers.Serializer):
    ORDERINGS = list(selectors.ORDERINGS)

    status = serializers.ChoiceField(choices=AgentStatus.choices, required=False)
    search = serializers.CharField(required=False, max_length=128)
    ordering = serializers.ChoiceField(choices=ORDERINGS, required=False, default=selectors.DEFAULT_ORDERING)
    label = serializers.ListField(child=serializers.CharField(max_length=400), required=False, max_length=MAX_LABELS)

    def validate_label(self, values):
        pairs = []
        for value in values:
            key, sep, label = value.partition(":")
            if not sep or not LABEL_KEY_RE.match(key):
                raise serializers.ValidationError("each label filter must be key:value")
            pairs.append((key, label))
        return pairs
