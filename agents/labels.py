"""Agent labels: the one rule for what keys and values they may have (API.md section 3).

Plain Python: the agents services call it where labels are written (create, update, register), the
serializers through `LabelsField`, and a metric config's `agent_selector` (the same shape) too.
"""

import re

from logfleet.errors import Invalid

MAX_LABELS = 32
LABEL_KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]{0,62}\Z")
LABEL_VALUE_MAX = 256


def clean_labels(value) -> dict:
    """The labels as stored; Invalid (path "": the labels as a whole) naming the first problem."""
    if not isinstance(value, dict):
        raise Invalid(details={"": "must be an object of string keys and string values"})
    if len(value) > MAX_LABELS:
        raise Invalid(details={"": f"at most {MAX_LABELS} labels"})
    for key, label in value.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.match(key):
            raise Invalid(details={"": f"label key {str(key)[:70]!r} must match [a-zA-Z_][a-zA-Z0-9_.-]{{0,62}}"})
        if not isinstance(label, str) or len(label) > LABEL_VALUE_MAX:
            raise Invalid(details={"": f"label {key!r} must be a string of at most {LABEL_VALUE_MAX} characters"})
    return value


# --- labels as people type them on the dashboard's forms ---------------------------------------


def labels_as_text(labels: dict) -> str:
    """One `key:value` a line, sorted by key: what a labels field of a page shows."""
    return "".join(f"{key}:{value}\n" for key, value in sorted(labels.items()))


def labels_from_text(text: str, *, field: str = "labels") -> dict:
    """One `key:value` a line (blank lines skipped) as a labels object; Invalid naming `field` when
    a line has no colon or repeats a key. `clean_labels` (through the API's serializer) checks the rest."""
    labels = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise Invalid(details={field: f"line {number}: write each label as key:value"})
        if key in labels:
            raise Invalid(details={field: f"line {number}: the key {key!r} is there twice"})
        labels[key] = value.strip()
    return labels
