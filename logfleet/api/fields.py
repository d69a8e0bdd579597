from django.utils.dateparse import parse_datetime
from rest_framework import serializers


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
