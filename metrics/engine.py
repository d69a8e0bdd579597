"""The log-to-metric extraction engine: pure Python, no Django.

The server validates rules and runs `POST /metric-configs/test` with it; the reference agent
(edge/agent) extracts metrics with exactly the same code. Patterns are RE2 (google-re2): linear
time, no look-around, no back-references.

Each line is matched only by the rules that can match it: an Extractor puts the rules a source
runs into one RE2 Set (a single DFA pass over the line names every rule whose pattern matches),
then searches only those for their capture groups, and a rule that captures nothing is answered by
the Set alone. When nearly every rule matches nearly every line (the nginx rules do), that pass is
one search more than it saves, so each source measures what its lines cost both ways and uses the
Set only while it is the cheaper; either way the matches are those of match_line, in rule order.

Linear is not cheap: when RE2's DFA gives up, and while it extracts capture groups, a search
costs about 4 ns per compiled instruction per byte of the line (more with many groups), so
`(.*)` 600 times costs 0.2 s on a 1 000-byte line. Three bounds keep one rule cheap on every
line: at most MAX_PROGRAM_SIZE instructions and MAX_CAPTURE_GROUPS groups per pattern (checked
at validation, here and on the agent), and lines over MAX_LINE_BYTES are not matched at all.
At the limits the worst search costs about 8 µs per byte; the published nginx rules compile to
about 25 instructions with one group each.

    normalized, rules = compile_rules(config["metrics"])  # or RuleError({"0.pattern": "..."})
    extractor = Extractor([CompiledConfig(id, log_source, rules)])
    aggregator = Aggregator()
    for line in lines:
        for match in extractor.process(line, source="nginx"):
            aggregator.add(match)
    samples = aggregator.flush(timestamp)                  # what the agent pushes for an interval
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate, pairwise

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
# The prefilter Set of a source's rules gets what RE2 gives one pattern by default: its program is at
# most the rules' (MAX_RULES x MAX_PROGRAM_SIZE instructions, about 1.6 MiB), the rest is DFA cache.
_SET_OPTIONS = re2.Options()
_SET_OPTIONS.log_errors = False
_SET_OPTIONS.max_mem = 8 << 20
# The binding's search() wraps RE2's Match() in a generator and a match object, which costs more than
# the search itself on a log line (about 1 µs of the 1.5): the engine calls Match() and reads spans.
_UNANCHORED = re2._Anchor.UNANCHORED
_NO_SPAN = (-1, -1)
# Lines a source matches before it decides again whether its prefilter Set pays.
PREFILTER_SAMPLE = 1024


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


@dataclass(slots=True)  # not frozen: that costs 1 µs per match, a tenth of a line's budget
class Match:
    metric: str
    type: str
    labels: dict[str, str]
    value: float
    buckets: tuple[float, ...] = ()


class DeadlineExceeded(Exception):
    """The caller's time ran out between two searches (see match_line)."""


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


@dataclass(frozen=True)
class CompiledConfig:
    id: str
    log_source: str  # a source name, or "*" for every source
    rules: tuple[Rule, ...]


class Extractor:
    """Applies every rule of every config to each line of the sources they name. `skipped` counts
    the lines over MAX_LINE_BYTES that were not matched (the agent logs it per interval)."""

    def __init__(self, configs: list[CompiledConfig]):
        self._by_source: dict[str, list[Rule]] = {}
        self._everywhere: list[Rule] = []
        self.skipped = 0
        for config in configs:
            if config.log_source == "*":
                self._everywhere.extend(config.rules)
            else:
                self._by_source.setdefault(config.log_source, []).extend(config.rules)
        # One prefiltered group per source (an unknown source runs the "*" rules, None all of them).
        self._groups = {source: _Group(self.rules_for(source)) for source in self._by_source}
        self._everywhere_group = _Group(self._everywhere)
        self._all_group: _Group | None = None

    def rules_for(self, source: str | None) -> list[Rule]:
        if source is None:
            return [*self._everywhere, *(rule for rules in self._by_source.values() for rule in rules)]
        return [*self._by_source.get(source, ()), *self._everywhere]

    def prefiltered(self, source: str | None) -> bool:
        """Whether the source's lines go through its prefilter Set at the moment (the benchmark says)."""
        group = self._all_group if source is None else self._groups.get(source, self._everywhere_group)
        return group is not None and group.use_set

    def process(self, line: str | bytes, source: str | None = None) -> list[Match]:
        data = line_bytes(line)
        if len(data) > MAX_LINE_BYTES:
            self.skipped += 1
            return []
        if source is None:
            if self._all_group is None:
                self._all_group = _Group(self.rules_for(None))
            return self._all_group.match(data)
        return self._groups.get(source, self._everywhere_group).match(data)


class _Group:
    """The rules of one source with their prefilter: an RE2 Set of their patterns and one more, `\\z`,
    that matches every line (at its end, which costs the DFA nothing), so that a Set whose DFA could
    not run (RE2 then reports no match at all) is told from a line that matches nothing, and the
    line gets every rule instead.

    Cost, in searches per line: with the Set, 1 plus the rules it lets through that capture; without,
    every rule. Both ways tell which rules matched, so the group counts the first while it runs the
    second and switches, every PREFILTER_SAMPLE lines, to whichever is cheaper."""

    __slots__ = ("_captures", "_lines", "_searches", "_set", "_steps", "use_set")

    def __init__(self, rules: list[Rule]):
        # (rule, its RE2 Match, whether a sample needs its capture groups)
        self._steps = [(rule, rule.regex._regexp.Match, _needs_groups(rule)) for rule in rules]
        self._captures = [needs for _rule, _search, needs in self._steps]
        self._set = _rule_set(rules) if len(rules) > 1 else None
        self.use_set = self._set is not None
        self._lines = self._searches = 0

    def match(self, data: bytes) -> list[Match]:
        if self.use_set:
            found = self._set.Match(data)
            if len(self._steps) not in found:  # the sentinel: the Set could not run
                self.use_set, self._set = False, None
                return self.match(data)
            found.sort()
            found.pop()
            matches = []
            for index in found:
                rule, search, needs = self._steps[index]
                if needs:
                    match = _sample(rule, data, search(_UNANCHORED, data, 0, len(data)))
                else:
                    match = Match(rule.name, rule.type, {n: v for n, _g, v in rule.labels}, 1.0, rule.buckets)
                if match is not None:
                    matches.append(match)
            self._count(sum(self._captures[index] for index in found))
            return matches
        matches = []
        searches, end = 0, len(data)
        for rule, search, needs in self._steps:
            spans = search(_UNANCHORED, data, 0, end)
            if spans[0] != _NO_SPAN:
                searches += needs
                match = _sample(rule, data, spans)
                if match is not None:
                    matches.append(match)
        if self._set is not None:
            self._count(searches)
        return matches

    def _count(self, searches: int) -> None:
        self._lines += 1
        self._searches += searches
        if self._lines == PREFILTER_SAMPLE:
            self.use_set = self._lines + self._searches < self._lines * len(self._steps)
            self._lines = self._searches = 0


def _needs_groups(rule: Rule) -> bool:
    return rule.value_group is not None or any(group is not None for _name, group, _literal in rule.labels)


def _rule_set(rules: list[Rule]):
    """The rules' patterns in one RE2 Set, then the sentinel; None when RE2 cannot build it within
    _SET_OPTIONS.max_mem (the rules then run one by one)."""
    rule_set = re2.Set.SearchSet(_SET_OPTIONS)
    try:
        for rule in rules:
            rule_set.Add(rule.pattern)
        rule_set.Add(r"\z")
        rule_set.Compile()
    except re2.error:
        return None
    return rule_set._set  # the binding's Set object: its Match() takes the bytes as they are


def line_bytes(line: str | bytes) -> bytes:
    return line.encode("utf-8", errors="replace") if isinstance(line, str) else line


def label_value(captured: bytes | None) -> str:
    """A captured label value as ingestion accepts it: at most MAX_LABEL_VALUE_LENGTH characters and
    no NUL (PostgreSQL stores none, so the server refuses a batch that holds one)."""
    if captured is None:
        return ""
    if len(captured) <= MAX_LABEL_VALUE_LENGTH and b"\x00" not in captured:
        return captured.decode("utf-8", errors="replace")  # the common case: short enough as it is
    # Each character is at most 4 bytes: decode only the prefix that can end up in the value.
    text = captured[: MAX_LABEL_VALUE_LENGTH * 4].decode("utf-8", errors="replace")
    return text[:MAX_LABEL_VALUE_LENGTH].replace("\x00", "\ufffd")


def _sample(rule: Rule, data: bytes, spans, unmatched=None) -> Match | None:
    """The match of `rule` on a line it matched (RE2's spans), or None when it gives no sample: a
    captured value that is not a finite number skips the line (`unmatched(rule, reason)` hears why)."""
    labels = {}
    for name, group, literal in rule.labels:
        if group is None:
            labels[name] = literal
        else:
            start, end = spans[group]  # (-1, -1): the group took no part in the match
            labels[name] = label_value(data[start:end]) if start >= 0 else ""
    if rule.value_group is None:
        return Match(rule.name, rule.type, labels, 1.0, rule.buckets)
    start, end = spans[rule.value_group]
    captured = data[start:end] if start >= 0 else b""
    try:
        value = float(captured)
    except ValueError:
        if unmatched is not None:
            text = captured[:64].decode("utf-8", errors="replace")
            unmatched(rule, f"the value captured by group {rule.value_group}, {text!r}, is not a number")
        return None
    if rule.transform is not None:
        value = rule.transform(value)
    if not math.isfinite(value):
        if unmatched is not None:
            unmatched(rule, "the value is not a finite number")
        return None
    return Match(rule.name, rule.type, labels, value, rule.buckets)


def match_line(rules, line: str | bytes, *, expired=None, unmatched=None) -> list[Match]:
    """The matches of one line, every rule searched in order (an Extractor gives the same, faster).
    A line over MAX_LINE_BYTES matches nothing (callers count it).
    `expired()`, when given, is asked before each search; True raises DeadlineExceeded.
    `unmatched(rule, reason)`, when given, hears of a rule whose pattern matched but gave no sample."""
    data = line_bytes(line)
    if len(data) > MAX_LINE_BYTES:
        return []
    matches = []
    for rule in rules:
        if expired is not None and expired():
            raise DeadlineExceeded
        spans = rule.regex._regexp.Match(_UNANCHORED, data, 0, len(data))
        if spans[0] == _NO_SPAN:
            continue
        match = _sample(rule, data, spans, unmatched)
        if match is not None:
            matches.append(match)
    return matches


class Aggregator:
    """Matches of one interval, as samples: counter increments, the last gauge value, and
    histogram count/sum/cumulative buckets (Prometheus style, "+Inf" included).

    With `max_series`, the series past the first `max_series` met are left out and only counted
    (`omitted`), so that what it holds stays bounded."""

    def __init__(self, max_series: int | None = None):
        self._series: dict[tuple, dict] = {}
        self._max_series = max_series
        self._omitted: set[int] = set()  # hashes of the keys left out: a count, not their labels

    def __len__(self):
        return len(self._series)

    @property
    def omitted(self) -> int:
        return len(self._omitted)

    def add(self, match: Match) -> None:
        key = (match.metric, tuple(sorted(match.labels.items())))
        state = self._series.get(key)
        if state is None:
            if self._max_series is not None and len(self._series) >= self._max_series:
                self._omitted.add(hash(key))
                return
            state = self._series[key] = {"type": match.type, "labels": dict(match.labels)}
            if match.type == "counter":
                state["value"] = 0.0
            elif match.type == "histogram":
                # counts[i]: the observations in (bounds[i-1], bounds[i]], the last one above every
                # bound; flush() makes them cumulative.
                state.update(count=0, sum=0.0, bounds=match.buckets, counts=[0] * (len(match.buckets) + 1))
        kind = match.type
        if kind == "counter":
            state["value"] += match.value
        elif kind == "gauge":
            state["value"] = match.value
        else:
            state["count"] += 1
            state["sum"] += match.value
            state["counts"][bisect_left(state["bounds"], match.value)] += 1

    def flush(self, timestamp: float) -> list[dict]:
        """The interval's samples at `timestamp` (Unix seconds), and a fresh interval."""
        samples = []
        for (name, _labels), state in sorted(self._series.items(), key=lambda item: item[0]):
            sample = {"name": name, "type": state["type"], "labels": state["labels"], "timestamp": timestamp}
            if state["type"] == "histogram":
                cumulative = accumulate(state["counts"][:-1])
                buckets = {format_bound(b): c for b, c in zip(state["bounds"], cumulative, strict=True)}
                buckets["+Inf"] = state["count"]
                sample["histogram"] = {"count": state["count"], "sum": state["sum"], "buckets": buckets}
            else:
                sample["value"] = state["value"]
            samples.append(sample)
        self._series, self._omitted = {}, set()
        return samples


def format_bound(bound: float) -> str:
    """A bucket bound as Prometheus writes `le`: 0.5, 1, 2.5 (no trailing .0)."""
    return repr(float(bound)).removesuffix(".0") if float(bound).is_integer() else repr(float(bound))
