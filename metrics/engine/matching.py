"""Matching lines: match_line (every rule searched in order, with a deadline and explanations, for
`POST /metric-configs/test`) and the Extractor the agent runs, which gives the same matches through
a prefilter RE2 Set per source (see the package's docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import re2

from metrics.engine.rules import MAX_LABEL_VALUE_LENGTH, MAX_LINE_BYTES, Rule

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


@dataclass(slots=True)  # not frozen: that costs 1 µs per match, a tenth of a line's budget
class Match:
    metric: str
    type: str
    labels: dict[str, str]
    value: float
    buckets: tuple[float, ...] = ()


class DeadlineExceeded(Exception):
    """The caller's time ran out between two searches (see match_line)."""


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
