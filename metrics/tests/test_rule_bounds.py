"""What one rule, and one call of POST /metric-configs/test, may cost: bounded patterns, a work
budget, a deadline, and an answer no larger than its limits."""

import pytest

from agents.tests.factories import AgentFactory
from logfleet.testing import assert_error
from metrics import engine, trial
from metrics.tests.helpers import NGINX_LINES, config_saved_before_the_bounds, nginx_example

pytestmark = pytest.mark.django_db

CONFIGS = "/api/v1/metric-configs"
TEST = f"{CONFIGS}/test"
GOOD = {"name": "ok", "type": "counter", "pattern": "ok"}
# The review's example: 0.6 s per 1 000-character line for this one rule before the bounds.
SIX_HUNDRED_GROUPS = "(.*)" * 600 + "$"
COMBINED_LOG = (
    r'^(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"'
    r"(?: request_time=(\d+\.\d+))?"
)


def rule(pattern, **extra):
    return {"name": "m", "type": "counter", "pattern": pattern, **extra}


def create(client, metrics):
    return client.post(CONFIGS, {**nginx_example(), "metrics": metrics}, format="json")


def try_rules(client, metrics, lines):
    return client.post(TEST, {"metrics": metrics, "lines": lines}, format="json")


# --- bounded patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(SIX_HUNDRED_GROUPS, id="600-groups"),  # 6 004 instructions
        pytest.param(".{1000}", id="counted-dot"),  # 8 004 instructions: `.` is a UTF-8 sequence
        pytest.param(r"(\pL+) (\pL+)", id="two-unicode-classes"),  # 2 415 instructions
        pytest.param(r"(?i)\pL{200}", id="over-re2-memory"),  # 240 000 instructions: refused while compiling
    ],
)
def test_a_pattern_that_compiles_too_large_is_refused_naming_the_rule(member_client, pattern):
    for response in (
        create(member_client, [GOOD, rule(pattern)]),
        try_rules(member_client, [GOOD, rule(pattern)], ["x"]),
    ):
        details = assert_error(response, 400, "validation_error")["details"]
        assert set(details) == {"metrics.1.pattern"}, details
        assert "too complex" in details["metrics.1.pattern"] and "2000" in details["metrics.1.pattern"], details


def test_too_many_capture_groups_are_refused_and_32_are_accepted(member_client):
    details = assert_error(create(member_client, [rule("(a)" * 33)]), 400, "validation_error")["details"]
    assert "33 capture groups" in details["metrics.0.pattern"] and "(?:" in details["metrics.0.pattern"], details
    r = create(member_client, [rule("(a)" * 32, labels={"last": "$32"})])
    assert r.status_code == 201, r.json()


def test_an_update_with_a_pattern_over_the_bounds_is_refused(member_client):
    created = create(member_client, [GOOD]).json()
    r = member_client.patch(
        f"{CONFIGS}/{created['id']}", {"version": 1, "metrics": [rule(SIX_HUNDRED_GROUPS)]}, format="json"
    )
    assert "too complex" in assert_error(r, 400, "validation_error")["details"]["metrics.0.pattern"]


def test_real_rules_fit_the_bounds(member_client):
    rules = [
        *nginx_example()["metrics"],
        rule(COMBINED_LOG, name="access", labels={"method": "$4", "status": "$7"}),
        rule(r"user=(\pL+)", name="users", labels={"user": "$1"}),
        rule(r"(?i)\b(error|warn|warning|fatal|critical|exception|timeout|refused|denied)\b", name="levels"),
        rule(r'"duration_ms":\s*(\d+(?:\.\d+)?)', name="duration", type="gauge", value_capture="$1"),
    ]
    r = create(member_client, rules)
    assert r.status_code == 201, r.json()


def test_a_stored_rule_over_the_bounds_is_refused_when_tried(member_client, org):
    config = config_saved_before_the_bounds(organization=org, metrics=[GOOD, rule(SIX_HUNDRED_GROUPS)])
    r = member_client.post(TEST, {"config_id": str(config.pk), "lines": ["a" * 1000]}, format="json")
    details = assert_error(r, 400, "validation_error")["details"]
    assert set(details) == {"metrics.1.pattern"} and "too complex" in details["metrics.1.pattern"], details


# --- work budget and deadline ---------------------------------------------------------------


def many_rules(count):
    return [rule(r'"(GET|POST) ', name=f"m{i}", labels={"method": "$1"}) for i in range(count)]


def test_work_past_the_budget_is_refused_upfront_naming_the_budget(member_client):
    lines = [NGINX_LINES[0].ljust(300, "x")] * 1000  # 300 000 bytes
    body = assert_error(try_rules(member_client, many_rules(34), lines), 413, "payload_too_large")
    assert "10,000,000" in body["message"] and "34 rules" in body["message"], body
    assert body["details"] == {"work": 10_200_000, "budget": 10_000_000}
    r = try_rules(member_client, many_rules(33), lines)  # 9 900 000: within the budget
    assert r.status_code == 200, r.json()
    assert r.json()["complete"] is True and r.json()["lines_processed"] == 1000


def test_a_run_that_reaches_the_deadline_stops_and_says_how_far_it_got(member_client, settings, monkeypatch):
    # A clock that moves 1 s each time it is read, so the deadline falls on a known search whatever
    # the machine's speed: read once at the start, then before each of the 3 rules of each line.
    ticks = iter(range(10**6))
    monkeypatch.setattr(trial, "clock", lambda: next(ticks))
    settings.METRIC_TEST_DEADLINE_MS = 10_000
    r = try_rules(member_client, nginx_example()["metrics"], NGINX_LINES[:3] * 4)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["complete"] is False and body["lines_processed"] == 3, body  # the 10th search is past it
    assert len(body["results"]) == 3 and body["results_omitted"] == 0
    requests = {s["labels"]["method"]: s["value"] for s in body["samples"] if s["name"] == "http_requests_total"}
    assert requests == {"GET": 2.0, "POST": 1.0}  # the samples of the lines processed, nothing of the 4th


def test_a_complete_run_says_so(member_client):
    body = try_rules(member_client, nginx_example()["metrics"], NGINX_LINES).json()
    assert {key: body[key] for key in body if key not in ("results", "samples")} == {
        "complete": True,
        "lines_processed": 4,
        "lines_skipped": 0,
        "results_omitted": 0,
        "matches_omitted": 0,
        "samples_omitted": 0,
    }
    assert [result["skipped"] for result in body["results"]] == [False] * 4


def test_lines_longer_than_agents_match_are_skipped_and_marked(member_client):
    long_line = NGINX_LINES[0] + " " + "x" * engine.MAX_LINE_BYTES
    r = try_rules(member_client, nginx_example()["metrics"], [NGINX_LINES[0], long_line])
    assert r.status_code == 200, r.json()
    body = r.json()
    assert [(res["skipped"], len(res["matches"])) for res in body["results"]] == [(False, 3), (True, 0)]
    assert body["lines_skipped"] == 1 and body["lines_processed"] == 2
    counted = [s["value"] for s in body["samples"] if s["name"] == "http_requests_total"]
    assert counted == [1.0]


# --- a bounded answer -----------------------------------------------------------------------


def test_captured_values_are_cut_to_what_ingestion_accepts(member_client, org, edge_client):
    path = "/" + "p" * 5000
    r = try_rules(member_client, [rule(r'"GET (\S+)', labels={"path": "$1"})], [f'"GET {path} HTTP/1.1" 200'])
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["results"][0]["matches"][0]["labels"]["path"] == path[:256]
    # What the test shows is what an agent pushes, and ingestion takes it.
    agent = AgentFactory(organization=org)
    pushed = edge_client.post(f"/api/v1/edge/agents/{agent.pk}/metrics", {"samples": body["samples"]}, format="json")
    assert pushed.status_code == 202, pushed.json()
    assert pushed.json()["accepted"] == 1 and pushed.json()["rejected"] == 0, pushed.json()
    series = member_client.get("/api/v1/metrics/series", {"name": "m"}).json()["items"]
    assert [s["labels"]["path"] for s in series] == [path[:256]]


def test_the_answer_lists_the_first_100_lines_and_counts_the_rest(member_client):
    r = try_rules(member_client, nginx_example()["metrics"], NGINX_LINES * 250)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert len(body["results"]) == trial.MAX_RESULTS and body["results_omitted"] == 900
    assert body["lines_processed"] == 1000 and body["matches_omitted"] == 9 * 250 - 9 * 25
    requests = {s["labels"]["method"]: s["value"] for s in body["samples"] if s["name"] == "http_requests_total"}
    assert requests == {"GET": 500.0, "POST": 250.0}  # samples cover every line


def test_the_answer_lists_at_most_1000_matches_in_whole_lines(member_client):
    r = try_rules(member_client, many_rules(50), [NGINX_LINES[0]] * 30)  # 50 matches a line
    assert r.status_code == 200, r.json()
    body = r.json()
    assert len(body["results"]) == 20 and all(len(res["matches"]) == 50 for res in body["results"])
    assert body["results_omitted"] == 10 and body["matches_omitted"] == 500
    assert len(body["samples"]) == 50 and body["samples_omitted"] == 0


def test_the_answer_holds_at_most_1000_series(member_client):
    rules = [rule(r"id=(\d+)", name=name, labels={"id": "$1"}) for name in ("a", "b")]
    r = try_rules(member_client, rules, [f"id={i}" for i in range(1000)])  # 2 000 series
    assert r.status_code == 200, r.json()
    body = r.json()
    assert len(body["samples"]) == trial.MAX_SAMPLES and body["samples_omitted"] == 1000
    kept = sorted((s["name"], int(s["labels"]["id"])) for s in body["samples"])
    assert kept == sorted((name, i) for name in ("a", "b") for i in range(500))  # the first series met


def test_an_answer_over_the_size_limit_is_refused(member_client):
    # 30 KB in: 50 rules of 32 labels, each a 256-character capture, on 10 lines would be 4 MB out.
    labels = {f"l{i}": "$1" for i in range(32)}
    rules = [rule("(x+)", name=f"m{i}", labels=labels) for i in range(50)]
    body = assert_error(try_rules(member_client, rules, ["x" * 300] * 10), 413, "payload_too_large")
    assert "2,097,152 bytes" in body["message"], body
