"""What one rule, and one call of POST /metric-configs/test, may cost: bounded patterns, a work
budget, a deadline, and an answer no larger than its limits."""

import pytest

from agents.tests.factories import AgentFactory
from logfleet.testing import assert_error
from metrics.tests.helpers import nginx_example

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
