"""Families whose exported names collide (a histogram `lat` exports `lat_bucket`, `lat_sum` and
`lat_count`) are refused per organization: at ingestion and when rules are written, with a message
naming both families."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error
from metrics.models import Series

pytestmark = pytest.mark.django_db

CONFIGS = "/api/v1/metric-configs"


def counter(name: str, value: float = 1) -> dict:
    return {"name": name, "type": "counter", "labels": {}, "timestamp": time.time(), "value": value}


def gauge(name: str, value: float = 1) -> dict:
    return {"name": name, "type": "gauge", "labels": {}, "timestamp": time.time(), "value": value}


def histogram(name: str) -> dict:
    return {
        "name": name,
        "type": "histogram",
        "labels": {},
        "timestamp": time.time(),
        "histogram": {"count": 2, "sum": 0.3, "buckets": {"0.1": 1, "+Inf": 2}},
    }


def rule(name: str, kind: str) -> dict:
    body = {"name": name, "type": kind, "pattern": r"took=(\d+)"}
    if kind != "counter":
        body["value_capture"] = "$1"
    if kind == "histogram":
        body["buckets"] = [1, 10, 100]
    return body


def config(client, name: str, *rules):
    return client.post(CONFIGS, {"name": name, "metrics": list(rules)}, format="json")


@pytest.fixture
def two(org, agent):
    return agent, AgentFactory(organization=org, name="store-02")


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        (histogram("lat"), counter("lat_count"), "lat_count"),
        (histogram("lat"), gauge("lat_bucket"), "lat_bucket"),
        (counter("lat_sum"), histogram("lat"), "lat_sum"),
        (histogram("lat"), histogram("lat_bucket"), "lat_bucket"),
        (counter("lat"), gauge("lat"), "lat"),
    ],
)
def test_a_family_colliding_with_another_agents_is_refused_naming_both(push, two, first, second, shared):
    one, other = two
    assert push(one, [first]).json()["accepted"] == 1
    r = push(other, [second, counter("unrelated_total")])
    assert r.status_code == 202, r.json()
    body = r.json()
    assert body["accepted"] == 1 and body["rejected"] == 1, body
    message = body["errors"][0]["message"]
    assert body["errors"][0]["index"] == 0
    assert f"{second['type']} {second['name']}" in message and f"{first['type']} {first['name']}" in message
    assert f"exported as {shared}" in message
    assert not Series.objects.filter(agent=other, name=second["name"]).exists()


def test_the_export_of_an_organization_never_holds_a_name_twice(push, two, viewer_client):
    one, other = two
    push(one, [histogram("lat")])
    push(other, [counter("lat_count", 5), gauge("lat_bucket"), histogram("lat")])  # only its histogram joins
    text = viewer_client.get("/api/v1/metrics/export").content.decode()
    families = list(text_string_to_metric_families(text))
    assert [(family.name, family.type) for family in families] == [("lat", "histogram")]
    assert sorted(s.labels["agent"] for s in families[0].samples if s.name == "lat_count") == ["store-01", "store-02"]


def test_a_batch_bringing_two_colliding_families_keeps_the_first(push, agent):
    body = push(agent, [counter("lat_count"), histogram("lat"), counter("lat_count", 2)]).json()
    assert body["accepted"] == 2 and [error["index"] for error in body["errors"]] == [1]
    assert "histogram lat collides with the counter lat_count" in body["errors"][0]["message"]
    assert Series.objects.get(agent=agent).total == 3


def test_collisions_are_per_organization(push, agent, other_org):
    push(agent, [histogram("lat")])
    elsewhere = AgentFactory(organization=other_org)
    other_client = APIClient()
    other_client.credentials(HTTP_X_API_KEY=make_key(other_org)[1])
    assert push(elsewhere, [counter("lat_count")], client=other_client).json()["accepted"] == 1


def test_rules_of_one_config_that_collide_are_refused(member_client):
    r = config(member_client, "web", rule("lat", "histogram"), rule("other_total", "counter"), rule("lat_sum", "gauge"))
    body = assert_error(r, 400, "validation_error")
    assert set(body["details"]) == {"metrics.2.name"}
    message = body["details"]["metrics.2.name"]
    assert "gauge lat_sum collides with the histogram lat in this config" in message and "lat_sum" in message
    body = assert_error(config(member_client, "web", rule("x", "counter"), rule("x", "gauge")), 400)
    assert "metrics.1.name" in body["details"]  # a name is unique within a config, whatever its type

    tried = member_client.post(
        f"{CONFIGS}/test", {"metrics": [rule("lat", "histogram"), rule("lat_count", "counter")], "lines": []}
    )
    assert "metrics.1.name" in assert_error(tried, 400)["details"]


def test_a_rule_colliding_with_another_config_or_with_pushed_series_is_refused(member_client, push, agent):
    assert config(member_client, "web", rule("lat", "histogram")).status_code == 201
    body = assert_error(config(member_client, "jobs", rule("ok_total", "counter"), rule("lat_count", "counter")), 400)
    assert body["details"] == {
        "metrics.1.name": "counter lat_count collides with the histogram lat of the config web: both would be "
        "exported as lat_count (choose another name)"
    }
    assert config(member_client, "same", rule("lat", "histogram")).status_code == 201  # the same family

    push(agent, [gauge("queue")])
    body = assert_error(config(member_client, "queues", rule("queue", "counter")), 400)
    assert "counter queue collides with the gauge queue of this organization" in body["details"]["metrics.0.name"]


def test_an_update_is_checked_against_the_other_configs_but_not_itself(member_client):
    web = config(member_client, "web", rule("lat", "histogram")).json()
    jobs = config(member_client, "jobs", rule("jobs_total", "counter")).json()
    url = f"{CONFIGS}/{jobs['id']}"
    r = member_client.patch(url, {"version": 1, "metrics": [rule("lat_bucket", "gauge")]}, format="json")
    assert "the histogram lat of the config web" in assert_error(r, 400)["details"]["metrics.0.name"]
    # A config may change the type of its own rule (no other config has it).
    changed = member_client.patch(
        f"{CONFIGS}/{web['id']}", {"version": 1, "metrics": [rule("lat", "gauge")]}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    again = member_client.patch(url, {"version": 1, "metrics": [rule("lat_bucket", "gauge")]}, format="json")
    assert again.status_code == 200, again.json()
