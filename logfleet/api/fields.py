import re

from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from logfleet import labels
from logfleet.errors import MAX_VERSION, Invalid


def json_schema_pattern(regex: re.Pattern, *, then: str = "") -> str:
    """A Python `^...\\Z` rule as an OpenAPI (ECMA-262) pattern: `^...$`, or the rule's prefix followed by
    `then` when the rule covers only the start of the value (a label filter's key before its `:`)."""
    body = regex.pattern.removeprefix("^").removesuffix(r"\Z")
    return f"^{body}{then}" if then else f"^{body}$"


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

    #: a PATCH must carry it too (the OpenAPI schema declares it required there: logfleet.api.schema)
    required_when_partial = True

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


# An object that refuses keys it does not know, each named in the 400 (a typo in a config or a filter must
# not be silently ignored). The OpenAPI schema says so (`additionalProperties: false`,
# logfleet.api.schema.AutoSchema), for every subclass. (No docstring: the schema would show it as the
# description of every subclass that has none.)
class ClosedSerializer(serializers.Serializer):
    unknown_key_message = "unknown key"

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted((key for key in data if key not in self.fields), key=str)
            if unknown:
                raise serializers.ValidationError({key: self.unknown_key_message for key in unknown})
        return super().to_internal_value(data)


class QueryBooleanField(serializers.BooleanField):
    """A boolean query parameter: exactly `true` or `false`, as OpenAPI clients write them.

    DRF's BooleanField also takes `1`, `yes`, `on`... and, when nullable, `null` and the empty string
    (meaning "no filter"); a filter that is there says which, or is a 400."""

    TRUE_VALUES = {"true", True}
    FALSE_VALUES = {"false", False}
    NULL_VALUES = set()

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)


def json_type_errors(serializer: serializers.BaseSerializer, data) -> dict[str, str]:
    """{dotted path: message} for each value of a JSON body whose JSON type is not its field's.

    DRF's fields coerce what they are given (`{"name": 0}` is stored as "0", `"5"` counts as 5, `1` as
    true, an integer as a UUID); the API's contract, and its OpenAPI schema, say a string is a string.
    `logfleet.api.views.validated_body` runs this before the serializer, for every body of every app.
    Fields with their own rules (JSON values, custom fields) are left to them."""
    errors: dict[str, str] = {}
    _check_object(serializer, data, "", errors)
    return errors


_TYPE_MESSAGES = {
    "string": "must be a string",
    "integer": "must be an integer",
    "number": "must be a number",
    "boolean": "must be true or false",
}


def _json_type(field) -> str | None:
    if isinstance(field, serializers.BooleanField):
        return "boolean"
    if isinstance(field, serializers.IntegerField):
        return "integer"
    if isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        return "number"
    if isinstance(field, (serializers.CharField, serializers.UUIDField, serializers.DateTimeField)):
        return "string"
    if isinstance(field, serializers.ChoiceField) and all(isinstance(key, str) for key in field.choices):
        return "string"
    return None


def _has_type(value, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if json_type == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float))


def _check_object(serializer, data, prefix: str, errors: dict[str, str]) -> None:
    if not isinstance(data, dict):
        return  # the serializer says "expected an object"
    for name, field in serializer.fields.items():
        if field.read_only or name not in data:
            continue
        _check(field, data[name], f"{prefix}{name}", errors)


def _check(field, value, path: str, errors: dict[str, str]) -> None:
    if value is None:
        return  # allow_null is the field's to judge
    if isinstance(field, serializers.ListSerializer):
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check(field.child, item, f"{path}.{index}", errors)
    elif isinstance(field, serializers.Serializer):
        _check_object(field, value, f"{path}.", errors)
    elif isinstance(field, serializers.ListField):
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check(field.child, item, f"{path}.{index}", errors)
    elif isinstance(field, serializers.DictField):
        if isinstance(value, dict):
            for key, item in value.items():
                _check(field.child, item, f"{path}.{key}", errors)
    else:
        json_type = _json_type(field)
        if json_type is not None and not _has_type(value, json_type):
            errors[path] = _TYPE_MESSAGES[json_type]
