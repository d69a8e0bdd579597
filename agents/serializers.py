from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from agents import config as agent_config
from agents import presence, selectors
from agents.labels import LABEL_KEY_RE, LABEL_VALUE_MAX, MAX_LABELS, clean_labels
from agents.models import SOURCE_STATES, Agent, AgentStatus, ConfigStatus
from logfleet.api.fields import ClosedSerializer, LabelFiltersField, RuleField, VersionField, json_schema_pattern


@extend_schema_field(
    {
        "type": "object",
        "propertyNames": {"pattern": json_schema_pattern(LABEL_KEY_RE)},
        "additionalProperties": {"type": "string", "maxLength": LABEL_VALUE_MAX},
        "maxProperties": MAX_LABELS,
        "description": f"key → value; at most {MAX_LABELS}, keys [a-zA-Z_][a-zA-Z0-9_.-]{{0,62}}, "
        f"values at most {LABEL_VALUE_MAX} characters",
    }
)
class LabelsField(RuleField):
    """Labels (or a selector of them), checked by their one rule (agents.labels)."""

    rule = staticmethod(clean_labels)


class SourceStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    state = serializers.ChoiceField(choices=SOURCE_STATES, help_text="reading, or why the file is not being read")
    lines = serializers.IntegerField(help_text="lines read since the agent started")
    bytes = serializers.IntegerField(help_text="bytes read since the agent started")
    error = serializers.CharField(required=False)


class AgentListSerializer(serializers.ListSerializer):
    """A page of agents: whose socket is open is read once for the page (agents.presence)."""

    def to_representation(self, data):
        agents = list(data.all() if hasattr(data, "all") else data)
        self.child.connected = presence.connected_ids(agent.pk for agent in agents)
        return super().to_representation(agents)


class AgentSerializer(serializers.ModelSerializer):
    connected = serializers.SerializerMethodField(help_text="the agent's WebSocket is open, on any server process")
    status = serializers.ChoiceField(choices=AgentStatus.choices, read_only=True)
    config_status = serializers.ChoiceField(choices=ConfigStatus.choices, read_only=True)
    labels = serializers.DictField(child=serializers.CharField(), read_only=True)
    reported_status = serializers.ChoiceField(choices=AgentStatus.choices, read_only=True, allow_null=True)
    system_metrics = serializers.DictField(read_only=True)
    applied_config_hash = serializers.CharField(read_only=True, allow_null=True)
    sources = SourceStateSerializer(source="source_states", many=True, read_only=True)

    class Meta:
        model = Agent
        list_serializer_class = AgentListSerializer
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
            "connected",
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

    def get_connected(self, agent) -> bool:
        connected = getattr(self, "connected", None)
        if connected is None:  # one agent, not a page
            connected = presence.connected_ids([agent.pk])
        return agent.pk in connected


class AgentWriteSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=128)
    description = serializers.CharField(max_length=1024, required=False, allow_blank=True)
    labels = LabelsField(required=False)


class LogSourceOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    format = serializers.ChoiceField(choices=agent_config.SOURCE_FORMATS)


def _bounded(key: str, **kwargs) -> serializers.IntegerField:
    low, high = agent_config.BOUNDS[key]
    return serializers.IntegerField(min_value=low, max_value=high, **kwargs)


class AgentConfigBodySerializer(serializers.Serializer):
    log_sources = LogSourceOutSerializer(many=True)
    heartbeat_interval_seconds = _bounded("heartbeat_interval_seconds")
    metrics_interval_seconds = _bounded("metrics_interval_seconds")
    retention_hours = _bounded("retention_hours")


# The OpenAPI schema of a config written (the docstrings are its descriptions). They document; the
# rule that checks a config is agents.config.clean_config, through AgentConfigField.
@extend_schema_serializer(component_name="LogSource")
class LogSourceSchema(ClosedSerializer):
    """Refuses keys it does not know (a typo in a config must not be silently ignored)."""

    name = serializers.RegexField(agent_config.SOURCE_NAME_RE)
    path = serializers.CharField(max_length=agent_config.SOURCE_PATH_MAX)
    format = serializers.ChoiceField(choices=agent_config.SOURCE_FORMATS, default="text")


@extend_schema_serializer(component_name="AgentConfigValidator")
class AgentConfigSchema(ClosedSerializer):
    """Refuses keys it does not know (a typo in a config must not be silently ignored)."""

    log_sources = LogSourceSchema(many=True, required=False, max_length=agent_config.MAX_LOG_SOURCES)
    heartbeat_interval_seconds = _bounded("heartbeat_interval_seconds", required=False)
    metrics_interval_seconds = _bounded("metrics_interval_seconds", required=False)
    retention_hours = _bounded("retention_hours", required=False)


@extend_schema_field(AgentConfigSchema)
class AgentConfigField(RuleField):
    """A config written, checked by its one rule (agents.config.clean_config), defaults filled in."""

    rule = staticmethod(agent_config.clean_config)


class AgentConfigVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    hash = serializers.CharField(help_text="SHA-256 of the config's canonical JSON")
    config = AgentConfigBodySerializer()
    updated_at = serializers.DateTimeField()


class AgentConfigUpdateSerializer(serializers.Serializer):
    version = VersionField()
    config = AgentConfigField()


class AgentFilterSerializer(serializers.Serializer):
    ORDERINGS = list(selectors.ORDERINGS)

    status = serializers.ChoiceField(choices=AgentStatus.choices, required=False)
    search = serializers.CharField(
        required=False, max_length=128, help_text="Substring of the name or hostname (case-insensitive)"
    )
    ordering = serializers.ChoiceField(
        choices=ORDERINGS,
        required=False,
        default=selectors.DEFAULT_ORDERING,
        help_text="Never-seen agents sort last by last_heartbeat_at",
    )
    label = LabelFiltersField(key_re=LABEL_KEY_RE)
