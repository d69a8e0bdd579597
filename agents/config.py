"""The agent configuration: its schema, defaults and content hash (API.md section 3)."""

import hashlib
import json
import re

from rest_framework import serializers

DEFAULTS = {
    "log_sources": [],
    "heartbeat_interval_seconds": 30,
    "metrics_interval_seconds": 60,
    "retention_hours": 168,
}
MAX_LOG_SOURCES = 50
SOURCE_NAME_RE = re.compile(r"^[a-z0-9_-]{1,64}\Z")


def default_config() -> dict:
    return json.loads(json.dumps(DEFAULTS))


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know (a typo in a config must not be silently ignored)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: "unknown key" for key in unknown})
        return super().to_internal_value(data)


class LogSourceSerializer(StrictSerializer):
    name = serializers.RegexField(SOURCE_NAME_RE, error_messages={"invalid": "must be 1 to 64 of a-z, 0-9, _ and -"})
    path = serializers.CharField(max_length=4096)
    format = serializers.ChoiceField(choices=["text", "json"], default="text")

    def validate_path(self, value):
        if not value.startswith("/") or "\x00" in value:
            raise serializers.ValidationError("must be an absolute path")
        return value


class AgentConfigValidator(StrictSerializer):
    log_sources = LogSourceSerializer(many=True, required=False, max_length=MAX_LOG_SOURCES)
    heartbeat_interval_seconds = serializers.IntegerField(min_value=5, max_value=300, required=False)
    metrics_interval_seconds = serializers.IntegerField(min_value=10, max_value=3600, required=False)
    retention_hours = serializers.IntegerField(min_value=1, max_value=8760, required=False)

    def validate_log_sources(self, sources):
        names = [source["name"] for source in sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise serializers.ValidationError(f"source names must be unique: {', '.join(duplicates)}")
        return sources

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        return {**default_config(), **{key: value for key, value in values.items()}}


def normalize(config: dict) -> dict:
    """The whole config with defaults filled in (for configs stored before a key was added)."""
    return {**default_config(), **config}
