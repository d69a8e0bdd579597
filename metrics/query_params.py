"""Query-string validation of the /metrics read endpoints (and of the metric explorer's page,
which asks the same questions through query_check and span_seconds)."""

import re
from datetime import datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from logfleet import clock
from logfleet.api.exceptions import flatten_errors
from logfleet.api.fields import LabelFiltersField
from metrics import selectors

MAX_RANGE_SECONDS = 31 * 86400
MAX_BUCKETS = 11_000
LABEL_KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")


# Unix seconds from 1970 to the end of year 9999: the range a timestamp can be stored in.
MAX_UNIX_SECONDS = 253402300799


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^([0-9]{1,12}(\.[0-9]+)?|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
        r"([Zz]|[+-][0-9]{2}:?[0-9]{2}))$",
        "description": "ISO 8601 with an offset (`2024-01-15T10:30:00Z`), or Unix seconds",
    }
)
class TimeField(serializers.Field):
    """ISO 8601 with an offset, or Unix seconds; as integer Unix seconds."""

    def to_internal_value(self, data):
        text = str(data).strip()
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            if not 0 <= seconds <= MAX_UNIX_SECONDS:  # also NaN and infinity
                raise serializers.ValidationError("must be Unix seconds between 1970 and 9999 (not milliseconds)")
            return int(seconds)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise serializers.ValidationError("must be ISO 8601 or Unix seconds") from None
        if moment.tzinfo is None:
            raise serializers.ValidationError("must include a time zone offset, for example 2024-01-15T10:30:00Z")
        seconds = int(moment.timestamp())
        if not 0 <= seconds <= MAX_UNIX_SECONDS:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
            raise serializers.ValidationError("must be between 1970 and the end of 9999 in UTC")
        return seconds


class SeriesFilterSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200)
    agent_id = serializers.UUIDField(required=False)
    label = LabelFiltersField(key_re=LABEL_KEY_RE)


class QueryParamsSerializer(SeriesFilterSerializer):
    name = serializers.CharField(max_length=200)
    start = TimeField(required=False, help_text="default: end - 1 h")
    end = TimeField(required=False, help_text="exclusive; default: now")
    step = serializers.IntegerField(
        required=False, default=60, min_value=10, max_value=86400, help_text="bucket width in seconds"
    )
    agg = serializers.ChoiceField(
        choices=sorted(set(selectors.SAMPLE_AGGS) | set(selectors.HISTOGRAM_AGGS)), required=False, default="sum"
    )
    group_by = serializers.CharField(
        required=False, allow_blank=True, max_length=400, help_text="comma-separated: agent_id and/or label names"
    )

    def validate_group_by(self, value):
        keys = tuple(key.strip() for key in value.split(",") if key.strip())
        for key in keys:
            if key != "agent_id" and not LABEL_KEY_RE.match(key):
                raise serializers.ValidationError(f"{key[:64]!r} is neither agent_id nor a label name")
        if len(set(keys)) != len(keys) or len(keys) > 10:
            raise serializers.ValidationError("at most 10 distinct keys")
        return keys

    def validate(self, attrs):
        # The end is exclusive: by default it is the end of the current second, so a sample taken
        # just now is in the answer.
        end = attrs.get("end", int(clock.unix()) + 1)
        start = attrs.get("start", end - 3600)
        if end <= start:
            raise serializers.ValidationError({"end": "must be after start"})
        if end - start > MAX_RANGE_SECONDS:
            raise serializers.ValidationError({"start": "the range may span at most 31 days"})
        if (end - start) / attrs["step"] > MAX_BUCKETS:
            raise serializers.ValidationError({"step": f"the range would have more than {MAX_BUCKETS} buckets"})
        return {**attrs, "start": start, "end": end, "group_by": attrs.get("group_by", ())}


def query_check(params: dict) -> tuple[dict | None, dict[str, str]]:
    """`GET /metrics/query`'s parameters checked as the endpoint checks them: (the validated
    parameters, {}) or (None, the problems by field in the API's words)."""
    serializer = QueryParamsSerializer(data=params)
    if serializer.is_valid():
        return dict(serializer.validated_data), {}
    return None, flatten_errors(serializer.errors)


def span_seconds(start, end) -> int | None:
    """Seconds from `start` to `end` as the query reads them (ISO 8601 or Unix seconds); None when
    either is not a time or the span is not positive (query_check then says why)."""
    try:
        seconds = TimeField().to_internal_value(end) - TimeField().to_internal_value(start)
    except serializers.ValidationError:
        return None
    return seconds if seconds > 0 else None
