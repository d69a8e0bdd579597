import pytest
from django.test import Client

from accounts.models import User
from agents.tests.factories import AgentFactory
from metrics.models import MetricConfig, Series

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client():
    client = Client()
    client.force_login(User.objects.create_superuser("ops@example.com", "Operator-passw0rd"))
    return client


def test_the_admin_tells_series_apart_by_labels_and_shows_rules_readably(operator_client, org):
    agent = AgentFactory(organization=org)
    for method in ("GET", "POST"):
        Series.objects.create(
            organization=org,
            agent=agent,
            name="http_requests_total",
            type="counter",
            labels={"method": method},
            labels_hash=method,
        )
    listing = operator_client.get("/admin/metrics/series/").content.decode()
    assert "method=GET" in listing and "method=POST" in listing
    config = MetricConfig.objects.create(
        organization=org, name="nginx", metrics=[{"name": "a", "type": "counter", "pattern": "x"}]
    )
    page = operator_client.get(f"/admin/metrics/metricconfig/{config.pk}/change/").content.decode()
    assert "<pre>[\n  {\n" in page


def test_samples_and_rollups_are_browsable_read_only(operator_client, org):
    for page in ("/admin/metrics/sample/", "/admin/metrics/rollup/", "/admin/streaming/streamsession/"):
        assert operator_client.get(page).status_code == 200, page
    assert operator_client.get("/admin/metrics/sample/add/").status_code == 403
