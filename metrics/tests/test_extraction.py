"""The extraction engine's fast paths give exactly the matches of the plain rule semantics: every
rule searched on every line through google-re2's own search() and match objects (the reference
below, written apart from the engine), on the published examples and on random lines, with the
prefilter Set in use and not, and when RE2 cannot run the Set at all."""

import math
import random

import pytest

from edge.agent.loggen import line as access_line
from metrics import engine
from metrics.engine import matching
from metrics.examples import nginx_example
from metrics.tests.helpers import NGINX_LINES

APP_RULES = [
    {"name": "errors_total", "type": "counter", "pattern": r"\b(?:ERROR|FATAL)\b", "labels": {"kind": "app"}},
    {"name": "level_total", "type": "counter", "pattern": r"(?i)\blevel=(warn|error)\b", "labels": {"level": "$1"}},
    {
        "name": "latency_seconds",
        "type": "gauge",
        "pattern": r"latency=(\d+(?:\.\d+)?)ms",
        "value_capture": "$1",
        "value_transform": "ms_to_seconds",
    },
    # The group takes no part in a match of "user=;".
    {"name": "users_total", "type": "counter", "pattern": r"user=(\w+)?;", "labels": {"user": "$1", "app": "shop"}},
    {"name": "digit_first_total", "type": "counter", "pattern": r"^\d"},
    {"name": "done_total", "type": "counter", "pattern": r"done$"},
    {"name": "line_start_total", "type": "counter", "pattern": r"(?m)^b(\w)", "labels": {"next": "$1"}},
    # Values that are not numbers ("abc"), or not finite ("inf", "1e400"), give no sample.
    {"name": "size_bytes", "type": "histogram", "pattern": r"size=(\S+)", "value_capture": "$1", "buckets": [10, 100]},
    {"name": "greek_total", "type": "counter", "pattern": r"(\p{Greek}+)é", "labels": {"word": "$1"}},
    {"name": "quoted_total", "type": "counter", "pattern": r'"([^"]*)"', "labels": {"quoted": "$1"}},
]
EVERYWHERE_RULES = [
    {"name": "any_total", "type": "counter", "pattern": "x*"},  # matches every line, at its start
    {"name": "fatal_total", "type": "counter", "pattern": "FATAL"},
]
FRAGMENTS = [
    "GET ",
    '"POST /x HTTP/1.1" 200 ',
    'HTTP/1.0" 404',
    "request_time=0.250",
    "request_time=12.5",
    "ERROR",
    "xERRORx",
    "FATAL",
    "level=WARN",
    "Level=error",
    "level=warned",
    "latency=12ms",
    "latency=0.5ms",
    "user=;",
    "user=bob;",
    "size=abc",
    "size=inf",
    "size=1e400",
    "size=10",
    "size=10.5",
    "size=-3",
    "done",
    "\nbz",
    "βγé",
    "é",
    '"q"',
    "\x00",
    "1",
    " ",
    " ",
    "\ufffd",
]


def compiled(rules):
    return tuple(engine.compile_rules(rules)[1])


def make_extractor():
    configs = [
        engine.CompiledConfig("nginx", "nginx", compiled(nginx_example()["metrics"])),
        engine.CompiledConfig("app", "app", compiled(APP_RULES)),
        engine.CompiledConfig("all", "*", compiled(EVERYWHERE_RULES)),
    ]
    return engine.Extractor(configs)


def reference_label(captured):
    text = (captured or b"")[: engine.MAX_LABEL_VALUE_LENGTH * 4].decode("utf-8", errors="replace")
    return text[: engine.MAX_LABEL_VALUE_LENGTH].replace("\x00", "\ufffd")


def reference(rules, line):
    """Every rule searched through the binding's search(), in order."""
    data = line.encode("utf-8", errors="replace") if isinstance(line, str) else line
    if len(data) > engine.MAX_LINE_BYTES:
        return []
    found_all = []
    for rule in rules:
        found = rule.regex.search(data)
        if found is None:
            continue
        labels = {name: reference_label(found.group(g)) if g is not None else lit for name, g, lit in rule.labels}
        value = 1.0
        if rule.value_group is not None:
            try:
                value = float(found.group(rule.value_group) or b"")
            except ValueError:
                continue
            value = rule.transform(value) if rule.transform else value
            if not math.isfinite(value):
                continue
        found_all.append((rule.name, rule.type, labels, value, rule.buckets))
    return found_all


def shaped(matches):
    return [(m.metric, m.type, m.labels, m.value, m.buckets) for m in matches]


def random_lines(rng, count):
    lines = []
    for _ in range(count):
        parts = rng.choices(FRAGMENTS, k=rng.randint(0, 8))
        text = "".join(parts)
        if rng.random() < 0.1:
            lines.append(text.encode() + bytes(rng.randrange(256) for _ in range(rng.randint(1, 20))))
        else:
            lines.append(text)
    return lines


def assert_same(extractor, source, lines):
    rules = extractor.rules_for(source)
    for text in lines:
        expected = reference(rules, text)
        assert shaped(extractor.process(text, source)) == expected, (source, text)
        assert shaped(engine.match_line(rules, text)) == expected, (source, text)


def test_the_published_examples_match_as_every_rule_searched_in_order():
    extractor = make_extractor()
    rng = random.Random(7)
    lines = [*NGINX_LINES, *(access_line(rng) for _ in range(200))]
    for source in ("nginx", "app", "elsewhere", None):
        assert_same(extractor, source, lines)
    # Each access line gives the three nginx metrics, and the "*" rule that matches every line.
    assert [m.metric for m in extractor.process(NGINX_LINES[0], "nginx")] == [
        "http_requests_total",
        "http_responses_total",
        "request_duration_seconds",
        "any_total",
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_lines_match_as_every_rule_searched_in_order_with_the_set_in_use(seed):
    extractor = make_extractor()
    lines = random_lines(random.Random(seed), 3 * engine.PREFILTER_SAMPLE)
    # The app's twelve rules: a random line matches a few, so the Set stays the cheaper way.
    assert extractor.prefiltered("app")
    assert_same(extractor, "app", lines)
    assert extractor.prefiltered("app")
    for source in ("nginx", "elsewhere", None):
        assert_same(extractor, source, lines[:500])


def test_a_source_whose_lines_match_every_rule_searches_them_without_the_set_and_gives_the_same():
    extractor = engine.Extractor([engine.CompiledConfig("nginx", "nginx", compiled(nginx_example()["metrics"]))])
    rng = random.Random(11)
    access = [access_line(rng) for _ in range(engine.PREFILTER_SAMPLE)]
    assert extractor.prefiltered("nginx")
    assert_same(extractor, "nginx", access)
    assert not extractor.prefiltered("nginx")  # every line matched the three rules: the Set saved nothing
    assert_same(extractor, "nginx", [*access[:200], *random_lines(rng, 300)])
    # Lines that stop matching bring the Set back, still with the same matches.
    others = random_lines(rng, 2 * engine.PREFILTER_SAMPLE)
    assert_same(extractor, "nginx", others)
    assert extractor.prefiltered("nginx")


def test_lines_at_the_byte_limit_are_matched_and_past_it_skipped_and_counted():
    extractor = make_extractor()
    at_limit = ("ERROR " + "y" * engine.MAX_LINE_BYTES)[: engine.MAX_LINE_BYTES]
    assert [m.metric for m in extractor.process(at_limit, "app")] == ["errors_total", "any_total"]
    assert extractor.process(at_limit + "y", "app") == []
    assert extractor.process(at_limit.encode() + b"\xff", "app") == []
    assert extractor.skipped == 2


def test_a_set_that_cannot_run_gives_every_rule_to_the_line(monkeypatch):
    class DfaOutOfMemory:
        """What RE2's Set answers when its DFA cannot run: no match, for every line."""

        def Match(self, data):
            return []

    monkeypatch.setattr(matching, "_rule_set", lambda rules: DfaOutOfMemory())
    extractor = make_extractor()
    assert extractor.prefiltered("app")
    assert_same(extractor, "app", random_lines(random.Random(5), 50))
    assert not extractor.prefiltered("app")


def test_histogram_buckets_are_cumulative_and_a_value_on_a_bound_is_in_its_bucket():
    aggregator = engine.Aggregator()
    values = [0.0, 0.5, 1.0, 1.0000001, 2.5, 7.0, -3.0, 100.0]
    bounds = (1.0, 2.5, 5.0)
    for value in values:
        aggregator.add(engine.Match("h", "histogram", {}, value, bounds))
    [sample] = aggregator.flush(10.0)
    assert sample["histogram"] == {
        "count": len(values),
        "sum": sum(values),
        "buckets": {bound_text: sum(v <= b for v in values) for bound_text, b in (("1", 1), ("2.5", 2.5), ("5", 5))}
        | {"+Inf": len(values)},
    }
