import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error
from metrics.tests.factories import MetricConfigFactory

pytestmark = pytest.mark.django_db

STEP = 60


@pytest.fixture
def base():
    """A bucket-aligned time ten minutes ago."""
    return (int(time.time()) // STEP - 10) * STEP


@pytest.fixture
def two_agents(org, agent):
    return agent, AgentFactory(organization=org, name="store-02", labels={"env": "dev"})


def sample(name, kind, ts, value=None, labels=None, histogram=None):
    body = {"name": name, "type": kind, "labels": labels or {}, "timestamp": ts}
    if histogram is not None:
        body["histogram"] = histogram
    else:
        body["value"] = value
    return body


def query(client, **params):
    return client.get("/api/v1/metrics/query", params)


def test_query_buckets_and_aggregations(push, two_agents, viewer_client, base):
    one, two = two_agents
    push(
        one,
        [
            sample("req", "counter", base + 5, 2, {"method": "GET"}),
            sample("req", "counter", base + 30, 3, {"method": "POST"}),
            sample("req", "counter", base + STEP + 1, 4, {"method": "GET"}),
        ],
    )
    push(two, [sample("req", "counter", base + 10, 10, {"method": "GET"})])
    window = {"name": "req", "start": base, "end": base + 2 * STEP, "step": STEP}

    r = query(viewer_client, **window)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["name"], body["type"], body["step"], body["agg"]) == ("req", "counter", STEP, "sum")
    assert body["series"] == [{"labels": {}, "points": [[base, 15.0], [base + STEP, 4.0]]}]

    def points(**params):
        return query(viewer_client, **window, **params).json()["series"][0]["points"]

    assert points(agg="count") == [[base, 3.0], [base + STEP, 1.0]]
    assert points(agg="avg") == [[base, 5.0], [base + STEP, 4.0]]
    assert points(agg="min") == [[base, 2.0], [base + STEP, 4.0]]
    assert points(agg="max") == [[base, 10.0], [base + STEP, 4.0]]
    assert points(agg="rate") == [[base, 15.0 / STEP], [base + STEP, 4.0 / STEP]]

    by_agent = query(viewer_client, **window, group_by="agent_id").json()["series"]
    assert {s["labels"]["agent_id"]: s["points"] for s in by_agent} == {
        str(one.pk): [[base, 5.0], [base + STEP, 4.0]],
        str(two.pk): [[base, 10.0]],
    }
    by_method = query(viewer_client, **window, group_by="method").json()["series"]
    assert by_method == [
        {"labels": {"method": "GET"}, "points": [[base, 12.0], [base + STEP, 4.0]]},
        {"labels": {"method": "POST"}, "points": [[base, 3.0]]},
    ]
    only_two = query(viewer_client, **window, agent_id=str(two.pk)).json()["series"]
    assert only_two == [{"labels": {}, "points": [[base, 10.0]]}]
    only_post = query(viewer_client, **window, label="method:POST").json()["series"]
    assert only_post == [{"labels": {}, "points": [[base, 3.0]]}]
    iso = query(
        viewer_client,
        name="req",
        start=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base)),
        end=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + STEP)),
        step=STEP,
    ).json()
    assert iso["series"][0]["points"] == [[base, 15.0]]


def test_histogram_percentiles(push, agent, viewer_client, base):
    buckets = {"0.1": 50, "0.5": 90, "1": 100, "+Inf": 100}
    push(agent, [sample("lat", "histogram", base + 1, histogram={"count": 100, "sum": 20.0, "buckets": buckets})])
    window = {"name": "lat", "start": base, "end": base + STEP, "step": STEP}

    def value(agg):
        return query(viewer_client, **window, agg=agg).json()["series"][0]["points"][0][1]

    assert value("p50") == pytest.approx(0.1)
    assert value("p90") == pytest.approx(0.5)
    assert value("p99") == pytest.approx(0.5 + 0.5 * 9 / 10)
    assert value("count") == 100 and value("sum") == 20.0
    assert "agg" in assert_error(query(viewer_client, **window, agg="avg"), 400)["details"]
    assert "agg" in assert_error(query(viewer_client, name="missing_or_counter", agg="bogus"), 400)["details"]


def test_percentiles_are_only_for_histograms(push, agent, viewer_client, base):
    push(agent, [sample("req", "counter", base + 1, 1)])
    refused = assert_error(query(viewer_client, name="req", start=base, end=base + STEP, agg="p99"), 400)
    assert refused["details"] == {"agg": "a counter supports sum, avg, min, max, count, rate"}, refused
    assert refused["error"] == "validation_error" and refused["message"] == "Invalid request parameters"


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "name"),
        ({"name": "x", "start": 0, "end": 40 * 86400}, "start"),
        ({"name": "x", "start": 0, "end": 86400 * 7, "step": 10}, "step"),
        ({"name": "x", "step": 5}, "step"),
        ({"name": "x", "step": 86401}, "step"),
        ({"name": "x", "start": 100, "end": 50}, "end"),
        ({"name": "x", "start": "2024-01-15T10:30:00"}, "start"),
        ({"name": "x", "start": "yesterday"}, "start"),
        ({"name": "x", "group_by": "bad-key"}, "group_by"),
        ({"name": "x", "agent_id": "nope"}, "agent_id"),
        ({"name": "x", "label": "nocolon"}, "label"),
    ],
)
def test_query_parameters_are_validated(viewer_client, params, field):
    assert field in assert_error(query(viewer_client, **params), 400, "validation_error")["details"]


def test_an_unknown_metric_is_an_empty_result_that_says_why(viewer_client):
    body = query(viewer_client, name="nothing").json()
    assert body["series"] == [] and body["type"] is None
    assert ["no metric named nothing" in warning for warning in body["warnings"]] == [True]


def test_filters_and_group_by_labels_that_match_nothing_say_so(push, agent, viewer_client, base):
    push(agent, [sample("req", "counter", base + 5, 2, {"method": "GET"})])
    window = {"name": "req", "start": base, "end": base + STEP}
    assert query(viewer_client, **window, group_by="method").json()["warnings"] == []
    grouped = query(viewer_client, **window, group_by="methd").json()
    assert grouped["series"] == [{"labels": {"methd": ""}, "points": [[base, 2.0]]}]
    assert ["has the label methd" in warning for warning in grouped["warnings"]] == [True]
    filtered = query(viewer_client, **window, label="method:PUT").json()
    assert filtered["series"] == [] and "filters" in filtered["warnings"][0]


def test_names_and_series(push, two_agents, viewer_client):
    one, two = two_agents
    now = time.time()
    push(
        one,
        [
            sample("b_gauge", "gauge", now, 1.0),
            sample("a_count", "counter", now, 1, {"k": "1"}),
            sample("a_count", "counter", now, 1, {"k": "2"}),
        ],
    )
    push(two, [sample("a_count", "counter", now, 1, {"k": "1"})])
    names = viewer_client.get("/api/v1/metrics/names").json()
    assert [(n["name"], n["type"], n["series"]) for n in names["items"]] == [
        ("a_count", "counter", 3),
        ("b_gauge", "gauge", 1),
    ]
    assert names["items"][0]["last_sample_at"].endswith("Z")
    series = viewer_client.get("/api/v1/metrics/series", {"name": "a_count"}).json()
    assert series["total"] == 3
    assert set(series["items"][0]) == {"id", "name", "type", "agent_id", "labels", "last_sample_at"}
    agent_ids = [item["agent_id"] for item in series["items"]]
    assert agent_ids == sorted(agent_ids)
    assert viewer_client.get("/api/v1/metrics/series", {"label": "k:2"}).json()["total"] == 1
    assert viewer_client.get("/api/v1/metrics/series", {"agent_id": str(two.pk)}).json()["total"] == 1


def test_other_organizations_metrics_are_invisible(push, agent, other_admin_client):
    push(agent, [sample("secret", "gauge", time.time(), 1.0)])
    assert other_admin_client.get("/api/v1/metrics/names").json()["total"] == 0
    assert other_admin_client.get("/api/v1/metrics/series").json()["total"] == 0
    assert query(other_admin_client, name="secret").json()["series"] == []
    assert "secret" not in other_admin_client.get("/api/v1/metrics/export").content.decode()


def test_prometheus_export_parses_and_holds_totals(push, agent, viewer_client, org):
    now = time.time()
    push(
        agent,
        [
            sample("http_requests_total", "counter", now - 120, 2, {"method": "GET"}),
            sample("http_requests_total", "counter", now - 60, 3, {"method": "GET"}),
            sample("queue_depth", "gauge", now - 120, 9.0),
            sample("queue_depth", "gauge", now - 60, 4.0),
            sample(
                "lat",
                "histogram",
                now - 60,
                histogram={"count": 3, "sum": 1.5, "buckets": {"0.5": 1, "1": 2, "+Inf": 3}},
            ),
            sample(
                "lat",
                "histogram",
                now - 30,
                histogram={"count": 1, "sum": 0.2, "buckets": {"0.5": 1, "1": 1, "+Inf": 1}},
            ),
        ],
    )
    push(agent, [sample("queue_depth", "gauge", now - 90, 100.0)])  # older than the latest: not the value
    r = viewer_client.get("/api/v1/metrics/export")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(r.content.decode())}
    common = {"agent_id": str(agent.pk), "agent": "store-01"}
    requests = families["http_requests"]
    assert requests.type == "counter"
    assert [(s.labels, s.value) for s in requests.samples] == [({"method": "GET", **common}, 5.0)]
    assert [(s.labels, s.value) for s in families["queue_depth"].samples] == [(common, 4.0)]
    lat = {(s.name, s.labels.get("le")): s.value for s in families["lat"].samples}
    assert lat[("lat_bucket", "0.5")] == 2 and lat[("lat_bucket", "1")] == 3 and lat[("lat_bucket", "+Inf")] == 4
    assert lat[("lat_count", None)] == 4 and lat[("lat_sum", None)] == pytest.approx(1.7)

    key_client = APIClient()
    key_client.credentials(HTTP_X_API_KEY=make_key(org, permissions=["metrics:read"])[1])
    assert key_client.get("/api/v1/metrics/export").content == r.content
    no_read = APIClient()
    no_read.credentials(HTTP_X_API_KEY=make_key(org, permissions=["edge:metrics"])[1])
    assert_error(no_read.get("/api/v1/metrics/export"), 403, "permission_denied")
    assert_error(APIClient().get("/api/v1/metrics/export"), 401, "not_authenticated")


def test_dashboard_summary(push, two_agents, viewer_client, edge_client, org):
    one, _two = two_agents
    edge_client.post(f"/api/v1/edge/agents/{one.pk}/heartbeat", {"status": "online"}, format="json")
    push(one, [sample("x", "gauge", time.time() - 30, 1.0), sample("x", "gauge", time.time() - 7200, 1.0)])
    r = viewer_client.get("/api/v1/dashboard/summary")
    assert r.status_code == 200, r.json()
    assert r.json() == {
        "agents": {"total": 2, "online": 1, "offline": 1, "error": 0},
        "configs": {"in_sync": 0, "pending": 0, "failed": 0, "unknown": 2},
        "streams": {"active": 0},
        "metrics": {"series": 1, "samples_last_hour": 1},
        "api_keys": {"active": 1},
    }
    assert r["X-RateLimit-Limit"] == "60"


def test_every_exported_family_has_help_from_its_rule_or_a_default(push, agent, viewer_client, org):
    rule = {
        "name": "queue_depth",
        "type": "gauge",
        "description": "Jobs waiting\\nin the queue",
        "pattern": "q=(\\d+)",
        "value_capture": "$1",
    }
    MetricConfigFactory(organization=org, name="jobs", metrics=[rule])
    now = time.time()
    push(agent, [sample("queue_depth", "gauge", now - 60, 4.0), sample("req", "counter", now - 60, 1)])
    text = viewer_client.get("/api/v1/metrics/export").content.decode()
    assert "# HELP queue_depth Jobs waiting\\\\nin the queue\n# TYPE queue_depth gauge\n" in text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["queue_depth"].documentation == "Jobs waiting\\nin the queue"
    assert families["req"].documentation == "counter req, extracted from logs by LogFleet"
