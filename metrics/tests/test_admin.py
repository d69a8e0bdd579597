import json

import pytest

from accounts.models import AuditEvent
from agents.tests.factories import AgentFactory
from logfleet.testing import assert_error
from metrics import services
from metrics.models import MetricConfig
from metrics.tests.factories import MetricConfigFactory, SeriesFactory
from metrics.tests.helpers import nginx_example

pytestmark = pytest.mark.django_db

CONFIGS = "/api/v1/metric-configs"


def test_the_admin_tells_series_apart_by_labels_and_shows_rules_readably(operator_client, org):
    agent = AgentFactory(organization=org)
    for method in ("GET", "POST"):
        SeriesFactory(agent=agent, name="http_requests_total", labels={"method": method})
    listing = operator_client.get("/admin/metrics/series/").content.decode()
    assert "method=GET" in listing and "method=POST" in listing
    config = MetricConfigFactory(
        organization=org, name="nginx", metrics=[{"name": "a", "type": "counter", "pattern": "x"}]
    )
    page = operator_client.get(f"/admin/metrics/metricconfig/{config.pk}/change/").content.decode()
    assert "<pre>[\n  {\n" in page


def test_samples_and_rollups_are_browsable_read_only(operator_client, org):
    for page in ("/admin/metrics/sample/", "/admin/metrics/rollup/", "/admin/streaming/streamsession/"):
        assert operator_client.get(page).status_code == 200, page
    assert operator_client.get("/admin/metrics/sample/add/").status_code == 403


# --- one check of the rules on every path ----------------------------------------------------

TOO_COMPLEX = {"name": "m", "type": "counter", "pattern": "(.*)" * 600 + "$"}
BAD_RULES = [
    pytest.param([{"name": "m", "type": "counter", "pattern": "("}], "metrics.0.pattern", id="re2-syntax"),
    pytest.param([TOO_COMPLEX], "metrics.0.pattern", id="too-complex"),
    pytest.param(
        [{"name": "m", "type": "gauge", "pattern": r"x(\d+)", "value_capture": "$2"}],
        "metrics.0.value_capture",
        id="missing-group",
    ),
    pytest.param([{"name": "m", "type": "counter", "pattern": "x"}] * 2, "metrics.1.name", id="duplicate-name"),
    pytest.param([], "metrics", id="no-rules"),
    pytest.param(
        [
            {"name": "lat", "type": "histogram", "pattern": r"x(\d+)", "value_capture": "$1", "buckets": [1]},
            {"name": "lat_count", "type": "counter", "pattern": "x"},
        ],
        "metrics.1.name",
        id="colliding-exported-names",
    ),
]


def admin_add(client, org, metrics):
    data = {
        "organization": org.pk,
        "name": "from-admin",
        "description": "",
        "log_source": "*",
        "enabled": "on",
        "agent_selector": "{}",
        "metrics": json.dumps(metrics),
    }
    return client.post("/admin/metrics/metricconfig/add/", data)


@pytest.mark.parametrize("metrics, field", BAD_RULES)
def test_a_bad_rule_is_refused_alike_by_the_api_the_rule_test_and_the_admin(
    operator_client, member_client, org, metrics, field
):
    created = member_client.post(CONFIGS, {**nginx_example(), "metrics": metrics}, format="json")
    details = assert_error(created, 400, "validation_error")["details"]
    assert set(details) == {field}, details
    message = details[field]
    tried = member_client.post(f"{CONFIGS}/test", {"metrics": metrics, "lines": ["x"]}, format="json")
    assert assert_error(tried, 400, "validation_error")["details"] == {field: message}
    added = admin_add(operator_client, org, metrics)
    assert added.status_code == 200, added.status_code
    assert added.context["adminform"].form.errors["metrics"] == [f"{field}: {message}"]
    assert not MetricConfig.objects.exists() and not AuditEvent.objects.exists()


def test_the_admin_adds_a_config_through_the_service(operator_client, org):
    rule = {"name": "req", "type": "counter", "pattern": r'"(GET|POST) ', "labels": ["method"]}
    r = admin_add(operator_client, org, [rule])
    assert r.status_code == 302, r.context["adminform"].form.errors if r.context else r.content
    config = MetricConfig.objects.get(name="from-admin")
    # Stored normalized, versioned and hashed, and audited, as the API's create does.
    assert config.metrics[0]["labels"] == {"method": "$1"} and config.metrics[0]["buckets"] is None
    assert config.version == 1 and len(config.hash) == 64
    assert AuditEvent.objects.filter(action="metric_config.created", target_id=config.pk).exists()


def test_the_admin_refuses_a_rule_colliding_with_another_config(operator_client, org):
    MetricConfigFactory(organization=org, name="web", metrics=[{"name": "lat_sum", "type": "counter", "pattern": "x"}])
    rule = {"name": "lat", "type": "histogram", "pattern": r"x(\d+)", "value_capture": "$1", "buckets": [1]}
    r = admin_add(operator_client, org, [rule])
    assert r.status_code == 200, r.status_code
    assert r.context["adminform"].form.errors["metrics"] == [
        "metrics.0.name: histogram lat collides with the counter lat_sum of the config web: both would be exported "
        "as lat_sum (choose another name)"
    ]
    assert not MetricConfig.objects.filter(name="from-admin").exists()


def test_the_admin_change_form_does_not_write_rules(operator_client, org):
    """A config changes through the API, under its version; the change form only shows it (it offered
    the rules as an editable field that skipped every check)."""
    config = services.metric_config_create(organization=org, actor=None, **nginx_example())
    page = f"/admin/metrics/metricconfig/{config.pk}/change/"
    r = operator_client.post(page, {"metrics": json.dumps([{"name": "m", "type": "counter", "pattern": "("}])})
    assert r.status_code == 302, r.context["adminform"].form.errors if r.context else r.content
    config_now = MetricConfig.objects.get(pk=config.pk)
    assert (config_now.metrics, config_now.version, config_now.hash) == (config.metrics, 1, config.hash)
