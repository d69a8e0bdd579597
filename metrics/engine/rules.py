"""Rule validation and compilation: each field checked, each pattern compiled within the bounds
that keep one rule cheap on every line (see the package's docstring)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from itertools import pairwise

import re2

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
CAPTURE_RE = re.compile(r"^\$(\d{1,2})\Z")
MULTIPLY_RE = re.compile(r"^multiply:([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\Z")
TYPES = ("counter", "gauge", "histogram")
TRANSFORMS = {
    "ms_to_seconds": lambda v: v / 1_000,
    "us_to_seconds": lambda v: v / 1_000_000,
    "ns_to_seconds": lambda v: v / 1_000_000_000,
    "bytes_to_kilobytes": lambda v: v / 1_024,
    "bytes_to_megabytes": lambda v: v / 1_048_576,
}
MAX_RULES = 50
MAX_BUCKETS = 50
MAX_LABELS = 32
MAX_PATTERN_LENGTH = 4096
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 1024
MAX_LABEL_VALUE_LENGTH = 256  # what ingestion accepts; captured values are cut to it
MAX_PROGRAM_SIZE = 2000
MAX_CAPTURE_GROUPS = 32
MAX_LINE_BYTES = 16 * 1024  # longer lines are skipped (counted), never cut: a cut number would be a wrong value
RULE_FIELDS = ("name", "type", "description", "pattern", "labels", "value_capture", "value_transform", "buckets")

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
# RE2's memory budget per pattern (program and DFA cache), 8 MiB by default. 1 MiB makes a pattern
# far over MAX_PROGRAM_SIZE fail while compiling (in milliseconds, instead of building a 200 000
# instruction program for `(?i)\pL{200}` in 0.3 s) and bounds what each rule holds on an agent;
# the DFA of real rules needs a few kilobytes, and they run as fast as with the default.
_RE2_OPTIONS.max_mem = 1 << 20
_TOO_LARGE = "pattern too large - compile failed"


class RuleError(ValueError):
    """Rule validation errors: {"<index>.<field>": "message"}."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Rule:
    name: str
    type: str
    pattern: str
    regex: object = field(repr=False, compare=False)
    labels: tuple[tuple[str, int | None, str], ...] = ()  # (label name, capture group or None, literal)
    value_group: int | None = None
    transform: object = field(default=None, repr=False, compare=False)
    buckets: tuple[float, ...] = ()


def _too_complex(size: int | None) -> str:
    compiled = f"compiles to {size} RE2 instructions" if size else "compiles to too many RE2 instructions"
    return (
        f"is too complex: it {compiled}, at most {MAX_PROGRAM_SIZE} are allowed (the usual cause is a Unicode "
        "class such as \\pL, about 1 200 each, or a counted repetition such as .{500}; \\S+ or [^ ]+ cost about 15)"
    )


def compile_pattern(pattern: str):
    """The compiled RE2 pattern; raises ValueError with the reason it is refused (RE2's, or a bound)."""
    try:
        regex = re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if reason == _TOO_LARGE:
            raise ValueError(_too_complex(None)) from None
        raise ValueError(f"invalid RE2 pattern: {reason}") from None
    # Unanchored searches also run the reverse program (-1: it did not fit in max_mem).
    reverse = regex.reverseprogramsize
    size = max(regex.programsize, reverse)
    if reverse < 0 or size > MAX_PROGRAM_SIZE:
        raise ValueError(_too_complex(size if reverse >= 0 else None))
    if regex.groups > MAX_CAPTURE_GROUPS:
        raise ValueError(
            f"has {regex.groups} capture groups, at most {MAX_CAPTURE_GROUPS} are allowed "
            "(write (?:...) for a group that no label or value refers to)"
        )
    return regex


def finite_number(value) -> bool:
    """A JSON number that is a finite float: not a bool, NaN or infinity, nor an integer too large
    to be a float at all (10**400 would raise OverflowError where it is converted)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def parse_transform(value: str):
    if value in TRANSFORMS:
        return TRANSFORMS[value]
    match = MULTIPLY_RE.match(value)
    if match:
        factor = float(match.group(1))
        if math.isfinite(factor):
            return lambda v: v * factor
    raise ValueError(f"must be one of {', '.join(TRANSFORMS)} or multiply:<number>")


def normalize_labels(labels) -> dict[str, str]:
    """`{"method": "$1"}`, or the compat list `["method", "status"]` meaning `$1`, `$2`, ..."""
    if labels is None:
        return {}
    if isinstance(labels, list):
        if not all(isinstance(name, str) for name in labels):
            raise ValueError("a list of labels must hold label names")
        return {name: f"${index}" for index, name in enumerate(labels, start=1)}
    if isinstance(labels, dict):
        return labels
    raise ValueError("must be an object of label names to capture references or literal strings")


def _capture_group(reference, groups: int) -> int:
    match = CAPTURE_RE.match(reference) if isinstance(reference, str) else None
    if match is None:
        raise ValueError("must be a capture reference such as $1")
    group = int(match.group(1))
    if group < 1 or group > groups:
        raise ValueError(f"refers to group {group} but the pattern has {groups} group(s)")
    return group


# One check per field of a rule: each returns the field's clean value or raises ValueError with its
# problem. A check that needs the compiled pattern gets None when the pattern itself is refused, and
# then leaves capture references alone (the pattern's error is the one to fix first).


def _check_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError("is required")
    if len(name) > MAX_NAME_LENGTH or not METRIC_NAME_RE.match(name):
        raise ValueError("must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most 200 characters)")
    return name


def _check_type(kind) -> str:
    if kind not in TYPES:
        raise ValueError("must be one of counter, gauge, histogram")
    return kind


def _check_description(description) -> str:
    description = description or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
        raise ValueError(f"must be a string of at most {MAX_DESCRIPTION_LENGTH} characters")
    return description


def _check_pattern(pattern):
    """The compiled pattern, within the length, RE2 program and capture group bounds."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("is required")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"must be at most {MAX_PATTERN_LENGTH} characters")
    return compile_pattern(pattern)


def _check_label_count(labels: dict) -> None:
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")


def _check_label(label, template, regex) -> tuple[str, int | None, str]:
    """(label name, capture group or None, literal) of one label."""
    if not isinstance(label, str) or not LABEL_NAME_RE.match(label) or label.startswith("__"):
        raise ValueError("label names match [a-zA-Z_][a-zA-Z0-9_]* and may not start with __")
    if not isinstance(template, str) or len(template) > MAX_LABEL_VALUE_LENGTH:
        raise ValueError(f"must be a string of at most {MAX_LABEL_VALUE_LENGTH} characters")
    if template.startswith("$") and regex is not None:
        return label, _capture_group(template, regex.groups), ""
    return label, None, template


def _check_value_capture(kind, value_capture, regex) -> int | None:
    """The group a gauge or histogram takes its value from; a counter counts lines and has none."""
    if kind == "counter" and value_capture is not None:
        raise ValueError("a counter counts matching lines; value_capture is not allowed")
    if kind not in ("gauge", "histogram"):
        return None
    if value_capture is None:
        raise ValueError(f"is required for a {kind}")
    return _capture_group(value_capture, regex.groups) if regex is not None else None


def _check_value_transform(value_capture, value_transform):
    if value_transform is None:
        return None
    if value_capture is None:
        raise ValueError("is only allowed with value_capture")
    if not isinstance(value_transform, str):
        raise ValueError("must be a string")
    return parse_transform(value_transform)


def _check_buckets(kind, buckets) -> list[float]:
    if kind != "histogram":
        if buckets is not None:
            raise ValueError("only a histogram has buckets")
        return []
    if not isinstance(buckets, list) or not 1 <= len(buckets) <= MAX_BUCKETS:
        raise ValueError(f"a histogram needs 1 to {MAX_BUCKETS} bucket bounds")
    if not all(finite_number(b) for b in buckets):
        raise ValueError("bucket bounds must be finite numbers")
    if any(later <= earlier for earlier, later in pairwise(buckets)):
        raise ValueError("bucket bounds must be strictly increasing")
    return [float(b) for b in buckets]


def validate_rule(raw, index: int) -> tuple[dict | None, Rule | None, dict[str, str]]:
    """(normalized rule, compiled rule, errors) for one rule; errors are keyed "<index>.<field>",
    one per field that a check refused."""
    prefix = str(index)
    if not isinstance(raw, dict):
        return None, None, {prefix: "must be an object"}
    errors = {f"{prefix}.{unknown}": "unknown field" for unknown in sorted(set(raw) - set(RULE_FIELDS))}

    def check(field_name: str, validate, *args):
        try:
            return validate(*args)
        except ValueError as exc:
            errors[f"{prefix}.{field_name}"] = str(exc)
            return None

    name = check("name", _check_name, raw.get("name"))
    kind = check("type", _check_type, raw.get("type"))
    description = check("description", _check_description, raw.get("description"))
    pattern = raw.get("pattern")
    regex = check("pattern", _check_pattern, pattern)
    labels = check("labels", normalize_labels, raw.get("labels")) or {}
    check("labels", _check_label_count, labels)
    compiled_labels = [
        check(f"labels.{label}", _check_label, label, template, regex) for label, template in labels.items()
    ]
    value_capture, value_transform = raw.get("value_capture"), raw.get("value_transform")
    value_group = check("value_capture", _check_value_capture, kind, value_capture, regex)
    transform = check("value_transform", _check_value_transform, value_capture, value_transform)
    buckets = check("buckets", _check_buckets, kind, raw.get("buckets"))

    if errors:
        return None, None, errors
    normalized = {
        "name": name,
        "type": kind,
        "description": description,
        "pattern": pattern,
        "labels": labels,
        "value_capture": value_capture,
        "value_transform": value_transform,
        "buckets": buckets or None,
    }
    rule = Rule(
        name=name,
        type=kind,
        pattern=pattern,
        regex=regex,
        labels=tuple(compiled_labels),
        value_group=value_group,
        transform=transform,
        buckets=tuple(buckets),
    )
    return normalized, rule, {}


def compile_rules(metrics) -> tuple[list[dict], list[Rule]]:
    """Validate and compile a config's rules; raises RuleError naming each bad field."""
    if not isinstance(metrics, list):
        raise RuleError({"": "must be a list of rules"})
    if not 1 <= len(metrics) <= MAX_RULES:
        raise RuleError({"": f"a config has 1 to {MAX_RULES} rules"})
    errors: dict[str, str] = {}
    normalized, rules, seen = [], [], {}
    for index, raw in enumerate(metrics):
        clean, rule, rule_errors = validate_rule(raw, index)
        errors.update(rule_errors)
        if rule is None:
            continue
        if rule.name in seen:
            errors[f"{index}.name"] = f"duplicates the name of rule {seen[rule.name]}"
            continue
        seen[rule.name] = index
        normalized.append(clean)
        rules.append(rule)
    if errors:
        raise RuleError(errors)
    return normalized, rules
