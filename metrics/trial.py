"""`POST /metric-configs/test`: the agent's extraction engine on sample lines, with bounded work
and a bounded answer.

Three limits, each from settings: the work (line bytes times rules) is refused upfront past
METRIC_TEST_MAX_WORK; the run stops at METRIC_TEST_DEADLINE_MS and says how far it got; the answer
is refused past METRIC_TEST_MAX_RESPONSE_BYTES. Within them, `results` lists the first lines (at
most MAX_RESULTS lines and MAX_MATCHES matches, whole lines only) and `samples` the first
MAX_SAMPLES series met (so that a rule capturing a different value on every line holds at most
that many), each with a count of what was left out.
"""

import json
import time

from django.conf import settings

from logfleet.errors import TooLarge
from metrics import engine, services

MAX_RESULTS = 100
MAX_MATCHES = 1000
MAX_SAMPLES = 1000

clock = time.monotonic  # tests replace it to move time without waiting


def rules_compile(metrics) -> list[engine.Rule]:
    """The rules of a request or a stored config; a stored rule that the current bounds refuse
    (it was saved before them) is refused naming it, like a rule sent in the body."""
    message = "The config's rules are not valid under the current limits"
    return services.metric_rules_compile(metrics=metrics, message=message)[1]


def _json_size(value) -> int:
    """Bytes of `value` as the API renders it (compact UTF-8 JSON)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _refuse_work(work: int, lines: int, total_bytes: int, rules: int, budget: int):
    return TooLarge(
        f"This test would match {work:,} line bytes times rules ({total_bytes:,} bytes in {lines} lines, "
        f"{rules} rules); the budget is {budget:,}: send fewer or shorter lines, or fewer rules",
        details={"work": work, "budget": budget},
    )


def _refuse_answer(limit: int):
    return TooLarge(
        f"The answer would be larger than {limit:,} bytes: send fewer lines or rules, or rules that capture less",
        details={"max_response_bytes": limit},
    )


def rules_try(*, rules: list[engine.Rule], lines: list[str], timestamp: float) -> dict:
    """The matches per line and one interval's samples, as the agent would push them."""
    budget = settings.METRIC_TEST_MAX_WORK
    max_bytes = settings.METRIC_TEST_MAX_RESPONSE_BYTES
    encoded = [engine.line_bytes(line) for line in lines]
    matched_bytes = sum(len(data) for data in encoded if len(data) <= engine.MAX_LINE_BYTES)
    work = matched_bytes * len(rules)
    if work > budget:
        raise _refuse_work(work, len(lines), matched_bytes, len(rules), budget)

    deadline = clock() + settings.METRIC_TEST_DEADLINE_MS / 1000

    def expired() -> bool:
        return clock() >= deadline

    aggregator = engine.Aggregator(max_series=MAX_SAMPLES)
    results: list[dict] = []
    size = 0
    processed = skipped = found = listed = 0
    complete = listing = True
    for line, data in zip(lines, encoded, strict=True):
        too_long = len(data) > engine.MAX_LINE_BYTES
        unmatched: list[dict] = []

        def explain(rule, reason, unmatched=unmatched):
            unmatched.append({"metric": rule.name, "reason": reason})

        try:
            matches = [] if too_long else engine.match_line(rules, data, expired=expired, unmatched=explain)
        except engine.DeadlineExceeded:
            complete = False  # this line is left out whole: samples cover the lines processed
            break
        processed += 1
        skipped += too_long
        found += len(matches)
        for match in matches:
            aggregator.add(match)
        # `results` is the first lines, each with all its matches (a line has at most MAX_RULES).
        listing = listing and len(results) < MAX_RESULTS and listed + len(matches) <= MAX_MATCHES
        if listing:
            entry = {
                "line": line,
                "matches": [
                    {"metric": m.metric, "type": m.type, "labels": m.labels, "value": m.value} for m in matches
                ],
                "skipped": too_long,
                "unmatched": unmatched,
            }
            size += _json_size(entry)
            if size > max_bytes:
                raise _refuse_answer(max_bytes)
            results.append(entry)
            listed += len(matches)

    omitted = aggregator.omitted
    samples = aggregator.flush(timestamp)
    for sample in samples:
        size += _json_size(sample)
        if size > max_bytes:
            raise _refuse_answer(max_bytes)
    return {
        "results": results,
        "samples": samples,
        "complete": complete,
        "lines_processed": processed,
        "lines_skipped": skipped,
        "results_omitted": processed - len(results),
        "matches_omitted": found - listed,
        "samples_omitted": omitted,
    }
