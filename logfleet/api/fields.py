from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from logfleet.errors import MAX_VERSION


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
