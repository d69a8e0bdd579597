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

from metrics.engine.aggregation import Aggregator, format_bound
from metrics.engine.matching import (
    PREFILTER_SAMPLE,
    CompiledConfig,
    DeadlineExceeded,
    Extractor,
    Match,
    label_value,
    line_bytes,
    match_line,
)
from metrics.engine.rules import (
    CAPTURE_RE,
    LABEL_NAME_RE,
    MAX_BUCKETS,
    MAX_CAPTURE_GROUPS,
    MAX_DESCRIPTION_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS,
    MAX_LINE_BYTES,
    MAX_NAME_LENGTH,
    MAX_PATTERN_LENGTH,
    MAX_PROGRAM_SIZE,
    MAX_RULES,
    METRIC_NAME_RE,
    MULTIPLY_RE,
    RULE_FIELDS,
    TRANSFORMS,
    TYPES,
    Rule,
    RuleError,
    compile_pattern,
    compile_rules,
    finite_number,
    normalize_labels,
    parse_transform,
    validate_rule,
)

__all__ = [
    "CAPTURE_RE",
    "LABEL_NAME_RE",
    "MAX_BUCKETS",
    "MAX_CAPTURE_GROUPS",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_LABELS",
    "MAX_LABEL_VALUE_LENGTH",
    "MAX_LINE_BYTES",
    "MAX_NAME_LENGTH",
    "MAX_PATTERN_LENGTH",
    "MAX_PROGRAM_SIZE",
    "MAX_RULES",
    "METRIC_NAME_RE",
    "MULTIPLY_RE",
    "PREFILTER_SAMPLE",
    "RULE_FIELDS",
    "TRANSFORMS",
    "TYPES",
    "Aggregator",
    "CompiledConfig",
    "DeadlineExceeded",
    "Extractor",
    "Match",
    "Rule",
    "RuleError",
    "compile_pattern",
    "compile_rules",
    "finite_number",
    "format_bound",
    "label_value",
    "line_bytes",
    "match_line",
    "normalize_labels",
    "parse_transform",
    "validate_rule",
]
