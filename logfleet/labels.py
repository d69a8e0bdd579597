"""Label filters of the list and query endpoints (`?label=key:value`, repeat to require several):
one parser for every app, so that agents and metrics refuse a bad filter in the same words.

What a key may be is the caller's: agent labels (agents.labels) allow dots and dashes, metric label names are
Prometheus' ([a-zA-Z_][a-zA-Z0-9_]*).
"""

import re
from collections.abc import Iterable

from logfleet.errors import Invalid

MAX_FILTERS = 32
MAX_FILTER_LENGTH = 400
FILTER_MESSAGE = "each label filter must be key:value"

LabelFilters = tuple[tuple[str, str], ...]


def parse_label_filters(values: Iterable[str], *, key_re: re.Pattern, field: str = "label") -> LabelFilters:
    """`key:value` strings as (key, value) pairs; the value may be empty or hold colons. Raises
    Invalid naming `field` when a filter has no colon or its key breaks `key_re`."""
    pairs = []
    for value in values:
        key, sep, label = value.partition(":")
        if not sep or not key_re.match(key):
            raise Invalid(details={field: FILTER_MESSAGE})
        pairs.append((key, label))
    return tuple(pairs)
