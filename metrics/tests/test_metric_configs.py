import pytest

from accounts.models import AuditEvent, Role
from logfleet.errors import NotFound
from logfleet.testing import ResourceBattery, assert_error
from metrics.tests.helpers import NGINX_LINES, nginx_example

pytestmark = pytest.mark.django_db

CONFIGS = "/api/v1/metric-configs"


def url(config_id) -> str:
    return f"{CONFIGS}/{config_id}"


def create(client, **overrides):
    return client.post(CONFIGS, {**nginx_example(), **overrides}, format="json")


def test_metric_configs_resource_battery(org, other_org, role_clients, member_user):
    from metrics import services

    def make(organization):
        data = nginx_example()
        data["name"] = f"cfg-{organization.pk}-{services.MetricConfig.objects.count()}"
        return services.metric_config_create(organization=organization, actor=None, **data).pk

    ResourceBattery(
        list_url=CONFIGS,
        detail_url=url,
        make_in=make,
        writes=[("post", CONFIGS, nginx_example())],
        forbidden_roles=(Role.VIEWER,),
    ).run(org=org, other_org=other_org, role_clients=role_clients)


def test_the_published_example_is_accepted_as_is(member_client, member_user):
    published = nginx_example()  # API.md's example names its second counter without the _total suffix
    published["metrics"][1].update(name="http_response_status", description="HTTP response status codes")
    r = member_client.post(CONFIGS, published, format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["name"] == "nginx_metrics" and body["log_source"] == "nginx" and body["enabled"] is True
    assert body["version"] == 1 and len(body["hash"]) == 64 and body["agent_selector"] == {}
    assert body["created_by"] == str(member_user.pk)
    rule = body["metrics"][2]
    assert rule == {**nginx_example()["metrics"][2], "labels": {}, "value_transform": None}
    assert body["metrics"][0]["value_capture"] is None and body["metrics"][0]["buckets"] is None
    assert AuditEvent.objects.filter(action="metric_config.created", target_id=body["id"]).exists()


def test_labels_as_a_list_of_names_are_stored_as_an_object(member_client):
    example = nginx_example()
    example["metrics"] = [
        {
            "name": "req",
            "type": "counter",
            "pattern": r'"(GET|POST) \S+ HTTP/1\.1" (\d{3})',
            "labels": ["method", "status"],
        }
    ]
    r = create(member_client, metrics=example["metrics"])
    assert r.status_code == 201, r.json()
    assert r.json()["metrics"][0]["labels"] == {"method": "$1", "status": "$2"}


BASE_RULE = {"name": "m", "type": "counter", "pattern": "x(\\d+)"}


@pytest.mark.parametrize(
    "rule, field",
    [
        ({**BASE_RULE, "pattern": "(?=x)y"}, "metrics.0.pattern"),
        ({**BASE_RULE, "pattern": "(a)\\1"}, "metrics.0.pattern"),
        ({**BASE_RULE, "pattern": "("}, "metrics.0.pattern"),
        ({**BASE_RULE, "pattern": ""}, "metrics.0.pattern"),
        ({**BASE_RULE, "name": "1bad"}, "metrics.0.name"),
        ({**BASE_RULE, "name": "bad-name"}, "metrics.0.name"),
        ({**BASE_RULE, "type": "summary"}, "metrics.0.type"),
        ({**BASE_RULE, "labels": {"code": "$2"}}, "metrics.0.labels.code"),
        ({**BASE_RULE, "labels": {"__reserved": "x"}}, "metrics.0.labels.__reserved"),
        ({**BASE_RULE, "labels": {"bad-label": "$1"}}, "metrics.0.labels.bad-label"),
        ({**BASE_RULE, "labels": ["a", "b"]}, "metrics.0.labels.b"),
        ({**BASE_RULE, "value_capture": "$1"}, "metrics.0.value_capture"),
        ({**BASE_RULE, "type": "gauge"}, "metrics.0.value_capture"),
        ({**BASE_RULE, "type": "gauge", "value_capture": "$2"}, "metrics.0.value_capture"),
        ({**BASE_RULE, "type": "gauge", "value_capture": "1"}, "metrics.0.value_capture"),
        (
            {**BASE_RULE, "type": "gauge", "value_capture": "$1", "value_transform": "double"},
            "metrics.0.value_transform",
        ),
        (
            {**BASE_RULE, "type": "gauge", "value_capture": "$1", "value_transform": "multiply:x"},
            "metrics.0.value_transform",
        ),
        ({**BASE_RULE, "value_transform": "ms_to_seconds"}, "metrics.0.value_transform"),
        ({**BASE_RULE, "type": "histogram", "value_capture": "$1"}, "metrics.0.buckets"),
        ({**BASE_RULE, "type": "histogram", "value_capture": "$1", "buckets": []}, "metrics.0.buckets"),
        ({**BASE_RULE, "type": "histogram", "value_capture": "$1", "buckets": [1, 1]}, "metrics.0.buckets"),
        ({**BASE_RULE, "type": "histogram", "value_capture": "$1", "buckets": [2, 1]}, "metrics.0.buckets"),
        ({**BASE_RULE, "type": "histogram", "value_capture": "$1", "buckets": list(range(1, 52))}, "metrics.0.buckets"),
        ({**BASE_RULE, "buckets": [1]}, "metrics.0.buckets"),
        ({**BASE_RULE, "extra": 1}, "metrics.0.extra"),
    ],
)
def test_every_invalid_rule_gets_a_400_naming_the_field(member_client, rule, field):
    good = {"name": "ok", "type": "counter", "pattern": "ok"}
    details = assert_error(create(member_client, metrics=[good, rule]), 400, "validation_error")["details"]
    field = field.replace("metrics.0.", "metrics.1.")
    assert field in details, details


def test_rule_names_must_be_unique_and_rules_bounded(member_client):
    rule = {"name": "dup", "type": "counter", "pattern": "x"}
    assert "metrics.1.name" in assert_error(create(member_client, metrics=[rule, rule]), 400)["details"]
    assert "metrics" in assert_error(create(member_client, metrics=[]), 400)["details"]
    many = [{"name": f"m{i}", "type": "counter", "pattern": "x"} for i in range(51)]
    assert "metrics" in assert_error(create(member_client, metrics=many), 400)["details"]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"name": ""}, "name"),
        ({"log_source": "Bad Source"}, "log_source"),
        ({"agent_selector": {"1bad": "x"}}, "agent_selector"),
        ({"enabled": "maybe"}, "enabled"),
    ],
)
def test_config_fields_are_validated(member_client, overrides, field):
    assert field in assert_error(create(member_client, **overrides), 400)["details"]


def test_config_names_are_unique_per_organization(member_client, other_admin_client):
    assert create(member_client).status_code == 201
    assert_error(create(member_client), 409, "conflict")
    assert create(other_admin_client).status_code == 201


def test_updates_need_the_current_version_and_bump_version_and_hash(member_client):
    created = create(member_client).json()
    r = member_client.patch(url(created["id"]), {"version": 1, "enabled": False}, format="json")
    assert r.status_code == 200, r.json()
    patched = r.json()
    assert patched["version"] == 2 and patched["hash"] != created["hash"] and patched["enabled"] is False
    stale = assert_error(
        member_client.patch(url(created["id"]), {"version": 1, "description": "x"}, format="json"),
        409,
        "version_conflict",
    )
    assert stale["details"]["current_version"] == 2
    assert (
        "version"
        in assert_error(member_client.patch(url(created["id"]), {"enabled": True}, format="json"), 400)["details"]
    )
    full = {**nginx_example(), "version": 2, "description": "replaced", "agent_selector": {"env": "prod"}}
    r = member_client.put(url(created["id"]), full, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["version"] == 3 and r.json()["agent_selector"] == {"env": "prod"}
    assert (
        "version" in assert_error(member_client.put(url(created["id"]), nginx_example(), format="json"), 400)["details"]
    )
    assert AuditEvent.objects.filter(action="metric_config.updated").count() == 2


def test_an_invalid_update_changes_nothing(member_client):
    created = create(member_client).json()
    bad = {"version": 1, "metrics": [{"name": "x", "type": "counter", "pattern": "("}]}
    assert (
        "metrics.0.pattern" in assert_error(member_client.patch(url(created["id"]), bad, format="json"), 400)["details"]
    )
    assert member_client.get(url(created["id"])).json() == created


def test_an_update_of_a_config_deleted_meanwhile_is_not_found(org):
    """The view read the config, then another request deleted it before the update locked it."""
    from metrics import services

    config = services.metric_config_create(organization=org, actor=None, **nginx_example())
    services.MetricConfig.objects.filter(pk=config.pk).delete()
    with pytest.raises(NotFound):
        services.metric_config_update(config=config, version=1, actor=None, enabled=False)


def test_delete(member_client):
    created = create(member_client).json()
    assert member_client.delete(url(created["id"])).status_code == 204
    assert_error(member_client.get(url(created["id"])), 404)
    assert AuditEvent.objects.filter(action="metric_config.deleted", target_id=created["id"]).exists()


def test_list_filters_and_order(member_client):
    create(member_client, name="b", log_source="nginx")
    create(member_client, name="a", log_source="app", enabled=False)
    assert [c["name"] for c in member_client.get(CONFIGS).json()["items"]] == ["a", "b"]
    assert [c["name"] for c in member_client.get(CONFIGS, {"enabled": "false"}).json()["items"]] == ["a"]
    assert [c["name"] for c in member_client.get(CONFIGS, {"log_source": "nginx"}).json()["items"]] == ["b"]
    assert_error(member_client.get(CONFIGS, {"enabled": "perhaps"}), 400)


def test_rules_can_be_tried_on_sample_lines(viewer_client):
    r = viewer_client.post(
        f"{CONFIGS}/test", {"metrics": nginx_example()["metrics"], "lines": NGINX_LINES}, format="json"
    )
    assert r.status_code == 200, r.json()
    results = r.json()["results"]
    assert [len(result["matches"]) for result in results] == [3, 3, 3, 0]
    assert results[0]["matches"][0] == {
        "metric": "http_requests_total",
        "type": "counter",
        "labels": {"method": "GET"},
        "value": 1.0,
    }
    assert results[1]["matches"][1]["labels"] == {"status": "401"}
    assert results[2]["matches"][2] == {
        "metric": "request_duration_seconds",
        "type": "histogram",
        "labels": {},
        "value": 3.25,
    }
    samples = {(s["name"], tuple(sorted(s["labels"].items()))): s for s in r.json()["samples"]}
    assert samples[("http_requests_total", (("method", "GET"),))]["value"] == 2.0
    assert samples[("http_responses_total", (("status", "200"),))]["value"] == 2.0
    histogram = samples[("request_duration_seconds", ())]["histogram"]
    assert histogram["count"] == 3 and histogram["sum"] == pytest.approx(3.374)
    assert histogram["buckets"]["0.01"] == 1 and histogram["buckets"]["0.25"] == 2
    assert histogram["buckets"]["5"] == 3 and histogram["buckets"]["+Inf"] == 3


def test_transforms_and_non_numeric_captures(member_client):
    rules = [
        {
            "name": "latency_seconds",
            "type": "gauge",
            "pattern": r"took=(\S+)ms",
            "value_capture": "$1",
            "value_transform": "ms_to_seconds",
        },
        {
            "name": "doubled",
            "type": "gauge",
            "pattern": r"took=(\S+)ms",
            "value_capture": "$1",
            "value_transform": "multiply:2",
            "labels": {"kind": "fixed"},
        },
    ]
    r = member_client.post(f"{CONFIGS}/test", {"metrics": rules, "lines": ["took=250ms", "took=abcms"]}, format="json")
    first, second = r.json()["results"]
    assert [(m["metric"], m["value"], m["labels"]) for m in first["matches"]] == [
        ("latency_seconds", 0.25, {}),
        ("doubled", 500.0, {"kind": "fixed"}),
    ]
    assert second["matches"] == [] and first["unmatched"] == []
    # The line matched both patterns, but "abc" is no number: the preview says so, per rule.
    assert second["unmatched"] == [
        {"metric": "latency_seconds", "reason": "the value captured by group 1, 'abc', is not a number"},
        {"metric": "doubled", "reason": "the value captured by group 1, 'abc', is not a number"},
    ]


def test_rules_of_a_stored_config_can_be_tried(member_client, other_admin_client):
    created = create(member_client).json()
    r = member_client.post(f"{CONFIGS}/test", {"config_id": created["id"], "lines": NGINX_LINES[:1]}, format="json")
    assert r.status_code == 200 and len(r.json()["results"][0]["matches"]) == 3
    foreign = other_admin_client.post(f"{CONFIGS}/test", {"config_id": created["id"], "lines": ["x"]}, format="json")
    assert_error(foreign, 404)


def test_rule_test_input_is_bounded(member_client):
    rules = nginx_example()["metrics"]
    assert (
        "lines"
        in assert_error(
            member_client.post(f"{CONFIGS}/test", {"metrics": rules, "lines": ["x"] * 1001}, format="json"), 400
        )["details"]
    )
    assert_error(member_client.post(f"{CONFIGS}/test", {"lines": ["x"]}, format="json"), 400)
    bad = member_client.post(
        f"{CONFIGS}/test",
        {"metrics": [{"name": "x", "type": "counter", "pattern": "("}], "lines": ["x"]},
        format="json",
    )
    assert "metrics.0.pattern" in assert_error(bad, 400)["details"]
