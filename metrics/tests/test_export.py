"""The Prometheus export (API.md section 7): who may read it and in which form of credential, and
histogram buckets that stay cumulative whatever bounds the agents sent over time."""

import random
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from apikeys import services as key_services
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db

EXPORT = "/api/v1/metrics/export"


def client(**headers) -> APIClient:
    api = APIClient()
    api.credentials(**headers)
    return api


def histogram(buckets: dict, ts: float, total: float = 1.0, name: str = "lat", labels=None) -> dict:
    return {
        "name": name,
        "type": "histogram",
        "labels": labels or {},
        "timestamp": ts,
        "histogram": {"count": buckets["+Inf"], "sum": total, "buckets": buckets},
    }


def exported_buckets(text: str, name: str = "lat") -> list[tuple[float, float]]:
    """(le, count) of the one series of histogram `name`, in bound order."""
    family = next(family for family in text_string_to_metric_families(text) if family.name == name)
    return sorted((float(s.labels["le"]), s.value) for s in family.samples if s.name == f"{name}_bucket")


@pytest.fixture
def exported(push, agent, viewer_client):
    """Something to export: one counter sample."""
    push(agent, [{"name": "hits_total", "type": "counter", "labels": {}, "timestamp": time.time(), "value": 3}])
    return viewer_client.get(EXPORT).content


def test_a_metrics_read_key_works_as_a_bearer_credential(exported, org):
    _key, raw = make_key(org, permissions=["metrics:read"])
    for headers in ({"HTTP_AUTHORIZATION": f"Bearer {raw}"}, {"HTTP_AUTHORIZATION": f"bearer  {raw} "}):
        r = client(**headers).get(EXPORT)
        assert r.status_code == 200, r.content
        assert r.content == exported and b"hits_total" in r.content
        assert r["X-RateLimit-Limit"] == "60"  # the Dashboard group, counted for the key
    assert client(HTTP_X_API_KEY=raw).get(EXPORT).content == exported  # as agents send a key


def test_every_role_reads_the_export_with_its_token(exported, role_clients):
    for role_client in role_clients.values():
        r = role_client.get(EXPORT)
        assert r.status_code == 200 and r.content == exported


def test_a_bearer_key_without_metrics_read_is_403_and_a_bad_one_401(db, org):
    _key, edge_only = make_key(org, permissions=["edge:metrics"])
    body = assert_error(client(HTTP_AUTHORIZATION=f"Bearer {edge_only}").get(EXPORT), 403, "permission_denied")
    assert "metrics:read" in body["message"]

    revoked, raw = make_key(org, permissions=["metrics:read"])
    key_services.api_key_revoke(key=revoked, actor=key_services.Actor())
    tampered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    for bad in (raw, tampered, "lf_prod_short", "lf_"):
        r = client(HTTP_AUTHORIZATION=f"Bearer {bad}").get(EXPORT)
        assert_error(r, 401, "not_authenticated")
        assert r["WWW-Authenticate"].startswith("Bearer")
    assert_error(client(HTTP_AUTHORIZATION="Bearer not-a-token").get(EXPORT), 401, "not_authenticated")
    assert_error(APIClient().get(EXPORT), 401, "not_authenticated")


def test_two_credentials_at_once_are_refused_whichever_is_valid(org, viewer_client):
    token = viewer_client.tokens.token
    _key, raw = make_key(org, permissions=["metrics:read"])
    for headers in (
        {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_API_KEY": raw},  # both valid
        {"HTTP_AUTHORIZATION": f"Bearer {raw}", "HTTP_X_API_KEY": raw},  # one key, twice
        {"HTTP_AUTHORIZATION": "Bearer expired-or-made-up", "HTTP_X_API_KEY": raw},  # a valid key, a bad token
        {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_API_KEY": "lf_prod_nonsense"},  # the reverse
        {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_API_KEY": ""},
    ):
        body = assert_error(client(**headers).get(EXPORT), 401, "not_authenticated")
        assert "not both" in body["message"]


def test_buckets_stay_cumulative_when_a_histograms_bounds_change(push, agent, viewer_client):
    now = time.time()
    # The issue's case: a rule with bounds 0.5 and then one with 0.1. Added bound by bound the export
    # said le=0.1 → 6 and le=0.5 → 3; a bound a sample lacks counts up to its nearest lower bound.
    push(agent, [histogram({"0.5": 3, "+Inf": 3}, now - 120)])
    push(agent, [histogram({"0.1": 6, "+Inf": 6}, now - 60)])
    text = viewer_client.get(EXPORT).content.decode()
    assert exported_buckets(text) == [(0.1, 6), (0.5, 9), (float("inf"), 9)]
    family = next(family for family in text_string_to_metric_families(text) if family.name == "lat")
    assert [s.value for s in family.samples if s.name == "lat_count"] == [9]

    # One batch holding both gives the same totals as two.
    both = [
        histogram({"0.5": 3, "+Inf": 3}, now - 120, name="lat2"),
        histogram({"0.1": 6, "+Inf": 6}, now - 60, name="lat2"),
    ]
    push(agent, both)
    assert exported_buckets(viewer_client.get(EXPORT).content.decode(), "lat2") == [
        (0.1, 6),
        (0.5, 9),
        (float("inf"), 9),
    ]


def test_buckets_are_cumulative_after_any_sequence_of_bounds(push, agent, viewer_client):
    rng = random.Random(15)
    now = time.time()
    pushed = 0
    for index in range(12):
        bounds = sorted(rng.sample([0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], rng.randint(1, 6)))
        counts, running = {}, 0
        for bound in bounds:
            running += rng.randint(0, 5)
            counts[str(bound)] = running
        counts["+Inf"] = running + rng.randint(0, 5)
        pushed += counts["+Inf"]
        assert push(agent, [histogram(counts, now - 300 + index)]).json()["accepted"] == 1
    buckets = exported_buckets(viewer_client.get(EXPORT).content.decode())
    values = [count for _bound, count in buckets]
    assert values == sorted(values), buckets
    assert buckets[-1] == (float("inf"), pushed)


def test_quantiles_of_a_query_read_changed_bounds_as_the_export_does(push, agent, viewer_client):
    start = (int(time.time()) // 3600 - 1) * 3600
    push(agent, [histogram({"0.5": 3, "+Inf": 3}, start + 10), histogram({"0.1": 6, "+Inf": 6}, start + 20)])
    r = viewer_client.get(
        "/api/v1/metrics/query", {"name": "lat", "start": start, "end": start + 3600, "step": 3600, "agg": "p90"}
    )
    assert r.status_code == 200, r.json()
    # Merged buckets 0.1 → 6, 0.5 → 9, +Inf → 9: rank 8.1 is in (0.1, 0.5] (bound by bound it was in +Inf).
    assert r.json()["series"][0]["points"] == [[start, pytest.approx(0.1 + 0.4 * (8.1 - 6) / 3)]]
