import time
from datetime import UTC, datetime, timedelta

import pytest

from agents.tests.factories import AgentFactory
from logfleet.testing import assert_error
from metrics.models import MetricBatch, Sample, Series

pytestmark = pytest.mark.django_db


def now_iso(offset_seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_seconds)).isoformat().replace("+00:00", "Z")


def counter(value=1.0, labels=None, name="http_requests_total", **extra):
    return {
        "name": name,
        "type": "counter",
        "labels": labels or {"method": "GET"},
        "timestamp": now_iso(),
        "value": value,
        **extra,
    }


def histogram(count=2, total=0.3, buckets=None):
    return {
        "name": "request_duration_seconds",
        "type": "histogram",
        "labels": {},
        "timestamp": time.time(),
        "histogram": {"count": count, "sum": total, "buckets": buckets or {"0.1": 1, "0.5": 2, "+Inf": 2}},
    }


def test_push_counters_gauges_and_histograms(push, agent):
    samples = [
        counter(3),
        counter(2, labels={"method": "POST"}),
        {"name": "queue_depth", "type": "gauge", "labels": {}, "timestamp": time.time(), "value": 7.5},
        histogram(),
    ]
    r = push(agent, samples, batch_id="b-1")
    assert r.status_code == 202, r.json()
    assert r.json() == {"accepted": 4, "rejected": 0, "errors": [], "duplicate": False}
    assert Series.objects.filter(agent=agent).count() == 4
    assert Sample.objects.count() == 4
    get = Series.objects.get(name="http_requests_total", labels={"method": "GET"})
    assert get.total == 3 and get.type == "counter" and get.last_sample_at is not None
    hist = Series.objects.get(name="request_duration_seconds")
    assert (hist.histogram_count, hist.histogram_sum, hist.histogram_buckets) == (
        2,
        0.3,
        {"0.1": 1, "0.5": 2, "+Inf": 2},
    )


def test_a_replayed_batch_stores_nothing_twice(push, agent):
    first = push(agent, [counter(5)], batch_id="batch-42")
    again = push(agent, [counter(5)], batch_id="batch-42")
    assert first.json()["duplicate"] is False
    assert again.status_code == 202 and again.json()["duplicate"] is True and again.json()["accepted"] == 1
    assert Sample.objects.count() == 1 and Series.objects.get().total == 5
    assert MetricBatch.objects.count() == 1
    # The same batch id from another agent is another batch.
    other = AgentFactory(organization=agent.organization)
    assert push(other, [counter(5)], batch_id="batch-42").json()["duplicate"] is False


def test_per_sample_errors_do_not_fail_the_batch(push, agent, settings):
    settings.METRIC_MAX_SERIES_PER_NAME = 2  # the cap, reached with three samples instead of 1001
    old = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    samples = [
        counter(1),  # 0 ok
        counter(1, timestamp=old),  # 1 too old
        counter(1, timestamp=now_iso(600)),  # 2 too far ahead
        counter(1, timestamp="2024-01-15T10:30:00"),  # 3 no offset
        counter("x"),  # 4 not a number
        counter(-1),  # 5 negative increment
        {
            "name": "http_requests_total",
            "type": "gauge",
            "labels": {"method": "GET"},
            "timestamp": time.time(),
            "value": 1,
        },  # 6 type mismatch
        counter(1, labels={f"l{i}": "v" for i in range(33)}),  # 7 too many labels
        counter(1, labels={"method": "PUT"}),  # 8 ok: the 2nd series of the name
        counter(1, labels={"method": "DELETE"}),  # 9 over the series cap
        counter(1, name="bad-name"),  # 10
        {
            "name": "h",
            "type": "histogram",
            "timestamp": time.time(),
            "histogram": {"count": 2, "sum": 1, "buckets": {"1": 2, "+Inf": 1}},
        },  # 11 not cumulative / +Inf
        {
            "name": "h",
            "type": "histogram",
            "timestamp": time.time(),
            "histogram": {"count": 2, "sum": 1, "buckets": {"1": 2}},
        },  # 12 no +Inf
        "not an object",  # 13
        counter(1, labels={"__name__": "x"}),  # 14 reserved label
        {"name": ["x"], "type": "counter", "timestamp": time.time(), "value": 1},  # 15 unhashable name
        {"name": "x", "type": ["counter"], "timestamp": time.time(), "value": 1},  # 16 unhashable type
        counter(1, timestamp=[1]),  # 17 unhashable timestamp
        counter(1, labels={"a": ["b"]}),  # 18 unhashable label value
    ]
    r = push(agent, samples)
    assert r.status_code == 202, r.json()
    body = r.json()
    assert body["accepted"] == 2 and body["rejected"] == 17
    errors = {error["index"]: error["message"] for error in body["errors"]}
    assert set(errors) == set(range(1, 19)) - {8}
    assert "7 days" in errors[1] and "future" in errors[2] and "offset" in errors[3]
    assert "counter" in errors[6] and "http_requests_total" in errors[9]
    assert Sample.objects.count() == 2


def test_timestamps_may_be_unix_seconds(push, agent):
    assert push(agent, [counter(1, timestamp=time.time() - 60)]).json()["accepted"] == 1


def test_whole_batch_errors_are_400(push, agent, edge_client):
    too_many = assert_error(push(agent, [counter()] * 10_001), 400, "validation_error")
    assert too_many["details"] == {"samples": "at most 10000 samples per batch"}, too_many
    long_id = assert_error(push(agent, [counter()], batch_id="x" * 129), 400, "validation_error")
    assert long_id["details"] == {"batch_id": "must be a string of 1 to 128 characters"}, long_id
    url = f"/api/v1/edge/agents/{agent.pk}/metrics"
    missing = assert_error(edge_client.post(url, {"batch_id": 7}, format="json"), 400, "validation_error")
    assert missing["details"] == {
        "samples": "must be a list of samples",
        "batch_id": "must be a string of 1 to 128 characters",
    }, missing
    assert missing["message"] == "Invalid request parameters"
    assert Sample.objects.count() == 0 and MetricBatch.objects.count() == 0


def test_push_is_scoped_to_the_keys_organization(push, other_org):
    foreign = AgentFactory(organization=other_org)
    assert_error(push(foreign, [counter()]), 404)
    assert Sample.objects.count() == 0


def test_push_needs_the_permission(org, agent):
    from rest_framework.test import APIClient

    from apikeys.tests.factories import make_key

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(org, permissions=["edge:heartbeat"])[1])
    r = client.post(f"/api/v1/edge/agents/{agent.pk}/metrics", {"samples": []}, format="json")
    assert_error(r, 403, "permission_denied")


def test_extreme_numbers_are_per_sample_errors_not_a_500(push, agent):
    huge = 10**400
    samples = [
        counter(1),  # 0 ok
        counter(huge),  # 1 a 400-digit value has no float
        counter(1, timestamp=time.time() * 1e9),  # 2 nanoseconds
        counter(1, timestamp=huge),  # 3 a 400-digit timestamp
        counter(1, timestamp=time.time() * 1000),  # 4 milliseconds
        {**histogram(count=huge, buckets={"+Inf": huge})},  # 5 beyond a bigint
        {**histogram(count=10**13, buckets={"+Inf": 10**13})},  # 6 beyond the per-sample bound
        {**histogram(buckets={"1e400": 1, "+Inf": 2})},  # 7 a bound that overflows to infinity
        counter(1, name="http_requests_total\n"),  # 8 a name ending in a newline
        counter(1, labels={"method\n": "GET"}),  # 9 a label name ending in a newline
    ]
    r = push(agent, samples)
    assert r.status_code == 202, r.json()
    errors = {error["index"]: error["message"] for error in r.json()["errors"]}
    assert set(errors) == set(range(1, 10)), errors
    assert "milliseconds" in errors[2] and "milliseconds" in errors[4]
    assert Sample.objects.count() == 1
    assert list(Series.objects.values_list("name", flat=True)) == ["http_requests_total"]


@pytest.mark.parametrize("start", ["inf", "-inf", "nan", "1e400", "1" * 400, str(time.time() * 1000)])
def test_query_times_out_of_range_are_a_400(viewer_client, start):
    r = viewer_client.get("/api/v1/metrics/query", {"name": "x", "start": start})
    assert "start" in assert_error(r, 400, "validation_error")["details"]
