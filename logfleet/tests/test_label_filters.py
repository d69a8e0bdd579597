"""`?label=key:value` filters: one parser (logfleet.labels) for the agents list and the metrics reads,
so a bad filter is refused in the same words everywhere; only what a key may be differs."""

import pytest

from agents.tests.factories import AgentFactory
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db

# path → the other parameters it needs
READS = {"/api/v1/agents": {}, "/api/v1/metrics/series": {}, "/api/v1/metrics/query": {"name": "x"}}
METRIC_READS = ["/api/v1/metrics/series", "/api/v1/metrics/query"]


@pytest.mark.parametrize(
    ("label", "details"),
    [
        ("no-colon", {"label": "each label filter must be key:value"}),
        (":value", {"label": "each label filter must be key:value"}),
        ("1key:value", {"label": "each label filter must be key:value"}),
        (["env:prod", "bad"], {"label": "each label filter must be key:value"}),
        ("", {"label.0": "This field may not be blank."}),
        ("k:" + "v" * 399, {"label.0": "Ensure this field has no more than 400 characters."}),
        (["k:v"] * 33, {"label": "Ensure this field has no more than 32 elements."}),
    ],
    ids=["no colon", "no key", "bad key", "one of several", "blank", "too long", "too many"],
)
def test_a_bad_label_filter_is_refused_alike_by_every_read(viewer_client, label, details):
    for path, params in READS.items():
        r = viewer_client.get(path, {**params, "label": label})
        assert assert_error(r, 400, "validation_error")["details"] == details, path


def test_a_value_may_be_empty_or_hold_colons(viewer_client, org):
    AgentFactory(organization=org, name="a", labels={"url": "http://x:80", "empty": ""})
    for label in ("url:http://x:80", "empty:"):
        assert viewer_client.get("/api/v1/agents", {"label": label}).json()["total"] == 1, label
        for path in METRIC_READS:
            assert viewer_client.get(path, {**READS[path], "label": label}).status_code == 200, (path, label)


def test_agent_label_keys_may_hold_dots_and_dashes_metric_label_names_may_not(viewer_client, org):
    AgentFactory(organization=org, labels={"app.kubernetes.io/name": "x", "team-name": "core"})
    assert viewer_client.get("/api/v1/agents", {"label": "team-name:core"}).json()["total"] == 1
    for path in METRIC_READS:
        assert_error(viewer_client.get(path, {**READS[path], "label": "team-name:core"}), 400, "validation_error")
