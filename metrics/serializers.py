from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.serializers import LabelsField
from logfleet.api.fields import ClosedSerializer, QueryBooleanField, VersionField
from logfleet.errors import Invalid
from metrics import engine, services, trial
from metrics.models import LOG_SOURCE_RE, MetricConfig, MetricType

MAX_TEST_LINES = 1000
MAX_LINE_LENGTH = 65536


@extend_schema_field(
    {
        "oneOf": [
            {"type": "object", "additionalProperties": {"type": "string"}},
            {"type": "array", "items": {"type": "string"}},
        ]
    }
)
class RuleLabelsField(serializers.Field):
    """Documents a rule's labels; metrics.engine checks them."""


class MetricRuleSerializer(ClosedSerializer):
    """Documents a rule; validation is metrics.engine (the same code the agent runs), which refuses unknown fields."""

    name = serializers.RegexField(
        engine.METRIC_NAME_RE, max_length=engine.MAX_NAME_LENGTH, help_text="unique within the config"
    )
    type = serializers.ChoiceField(choices=MetricType.choices)
    description = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=engine.MAX_DESCRIPTION_LENGTH
    )
    pattern = serializers.CharField(
        max_length=engine.MAX_PATTERN_LENGTH, help_text="RE2 regular expression (no look-around or back-references)"
    )
    labels = RuleLabelsField(
        required=False,
        help_text='{"label": "$1" or a literal}; compat: a list of names ["a", "b"] means $1, $2',
    )
    value_capture = serializers.RegexField(
        engine.CAPTURE_RE, required=False, allow_null=True, help_text="$N; gauge and histogram only"
    )
    value_transform = serializers.RegexField(
        rf"^({'|'.join(engine.TRANSFORMS)}|{engine.MULTIPLY_RE.pattern[1:-2]})\Z",
        required=False,
        allow_null=True,
        help_text="ms_to_seconds, us_to_seconds, ns_to_seconds, bytes_to_kilobytes, bytes_to_megabytes, "
        "or multiply:<number>",
    )
    buckets = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        allow_null=True,
        min_length=1,
        max_length=engine.MAX_BUCKETS,
        help_text="histograms only: strictly increasing finite numbers",
    )


@extend_schema_field(MetricRuleSerializer(many=True, min_length=1, max_length=engine.MAX_RULES))
class MetricRulesField(serializers.Field):
    """A config's rules, validated and normalized by the service's one check of them (here too, so
    that a bad rule is reported with the request's other bad fields)."""

    def to_internal_value(self, data):
        try:
            normalized, _rules = services.metric_rules_compile(metrics=data)
        except Invalid as exc:
            if "metrics" in exc.details:  # about the list as a whole
                raise serializers.ValidationError(exc.details["metrics"]) from None
            # DRF puts this field's name in front: "0.pattern" is reported as metrics.0.pattern.
            raise serializers.ValidationError(
                {key.removeprefix("metrics."): problem for key, problem in exc.details.items()}
            ) from None
        return normalized

    def to_representation(self, value):
        return value


class MetricConfigSerializer(serializers.ModelSerializer):
    metrics = MetricRulesField()
    agent_selector = serializers.DictField(child=serializers.CharField(), read_only=True)
    created_by = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)

    class Meta:
        model = MetricConfig
        fields = [
            "id",
            "name",
            "description",
            "log_source",
            "enabled",
            "agent_selector",
            "version",
            "hash",
            "metrics",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class MetricConfigWriteSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=128)
    description = serializers.CharField(max_length=1024, required=False, allow_blank=True, default="")
    log_source = serializers.RegexField(
        LOG_SOURCE_RE,
        required=False,
        default="*",
        error_messages={"invalid": "must be * or 1 to 64 of a-z, 0-9, _ and -"},
    )
    enabled = serializers.BooleanField(required=False, default=True)
    agent_selector = LabelsField(required=False, default=dict)
    metrics = MetricRulesField()


class MetricConfigUpdateSerializer(MetricConfigWriteSerializer):
    version = VersionField()


class MetricConfigFilterSerializer(serializers.Serializer):
    enabled = QueryBooleanField(help_text="only the enabled (true) or disabled (false) configs; both without it")
    log_source = serializers.CharField(required=False, max_length=64)


class RuleTestSerializer(serializers.Serializer):
    metrics = MetricRulesField(required=False)
    config_id = serializers.UUIDField(required=False)
    lines = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=MAX_LINE_LENGTH),
        max_length=MAX_TEST_LINES,
        help_text=f"at most {MAX_TEST_LINES}; a line over {engine.MAX_LINE_BYTES} bytes of UTF-8 is not matched, "
        "as on an agent",
    )

    def validate(self, attrs):
        if ("metrics" in attrs) == ("config_id" in attrs):
            raise serializers.ValidationError({"metrics": "give either metrics or config_id"})
        return attrs


class RuleMatchSerializer(serializers.Serializer):
    metric = serializers.CharField()
    type = serializers.CharField()
    labels = serializers.DictField(
        child=serializers.CharField(),
        help_text=f"captured values are cut to {engine.MAX_LABEL_VALUE_LENGTH} characters, as ingestion accepts them",
    )
    value = serializers.FloatField()


class UnmatchedRuleSerializer(serializers.Serializer):
    metric = serializers.CharField()
    reason = serializers.CharField()


class LineResultSerializer(serializers.Serializer):
    line = serializers.CharField()
    matches = RuleMatchSerializer(many=True)
    skipped = serializers.BooleanField(
        help_text=f"true for a line over {engine.MAX_LINE_BYTES} bytes of UTF-8: agents do not match such lines "
        "(they count them in their log), so it has no matches"
    )
    unmatched = UnmatchedRuleSerializer(
        many=True, help_text="rules whose pattern matched this line but gave no sample, and why"
    )


class RuleTestResultSerializer(serializers.Serializer):
    results = LineResultSerializer(
        many=True,
        help_text=f"the first lines processed, in order, each with all its matches: at most {trial.MAX_RESULTS} "
        f"lines and {trial.MAX_MATCHES} matches",
    )
    samples = serializers.ListField(
        child=serializers.DictField(),
        help_text=f"one interval's samples from every line processed, as an agent pushes them, in name and label "
        f"order: the first {trial.MAX_SAMPLES} series met",
    )
    complete = serializers.BooleanField(
        help_text="false when the run reached its time limit (METRIC_TEST_DEADLINE_MS) and stopped; "
        "results and samples then cover the first `lines_processed` lines"
    )
    lines_processed = serializers.IntegerField(help_text="lines run through every rule")
    lines_skipped = serializers.IntegerField(help_text="lines processed that were too long to match (`skipped`)")
    results_omitted = serializers.IntegerField(help_text="lines processed but not listed in `results`")
    matches_omitted = serializers.IntegerField(help_text="matches found but not listed in `results`")
    samples_omitted = serializers.IntegerField(help_text="series met after the first ones and left out of `samples`")
