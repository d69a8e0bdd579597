from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from logfleet import labels
from logfleet.errors import MAX_VERSION, Invalid


class UTCDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an explicit offset (`Z` or `+hh:mm`); naive timestamps are refused, output is UTC `Z`."""

    default_error_messages = {"naive": "must include a time zone offset, for example 2024-01-15T10:30:00Z"}

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)


class VersionField(serializers.IntegerField):
    """The `version` a client read, for optimistic locking: 1 up to what the column holds.

    A larger number can never be a current version; it is a 400 naming the field rather than a
    version conflict (or an integer the database refuses).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_VERSION)
        kwargs.setdefault("help_text", "The version you read (optimistic locking)")
        super().__init__(**kwargs)


class RuleField(serializers.JSONField):
    """A JSON value whose rule is a plain function of the app that writes it (`rule(value)` returns
    the value as stored or raises errors.Invalid naming paths inside the value, "" for the value
    itself). The service calls the same rule; here its problems land under the field, beside the
    serializer's other errors, as DRF's own would."""

    @staticmethod
    def rule(value):
        raise NotImplementedError

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return self.rule(value)
        except Invalid as exc:
            details = exc.details or {"": exc.message}
            if set(details) == {""}:
                raise serializers.ValidationError(details[""]) from None
            # "non_field_errors" is how the envelope names the value itself (logfleet.api.exceptions).
            nested = {path or "non_field_errors": problem for path, problem in details.items()}
            raise serializers.ValidationError(nested) from None


class LabelFiltersField(serializers.ListField):
    """`?label=key:value`, repeatable, as ((key, value), ...) (logfleet.labels: one parser for every app)."""

    def __init__(self, *, key_re, **kwargs):
        kwargs.setdefault("child", serializers.CharField(max_length=labels.MAX_FILTER_LENGTH))
        kwargs.setdefault("max_length", labels.MAX_FILTERS)
        kwargs.setdefault("required", False)
        self.key_re = key_re
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return labels.parse_label_filters(super().to_internal_value(data), key_re=self.key_re)
        except Invalid:
            raise serializers.ValidationError(labels.FILTER_MESSAGE) from None
