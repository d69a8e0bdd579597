import pytest

from accounts.models import AuditEvent
from agents.tests.factories import AgentFactory
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db

DEFAULT = {"log_sources": [], "heartbeat_interval_seconds": 30, "metrics_interval_seconds": 60, "retention_hours": 168}
NGINX = {"name": "nginx", "path": "/var/log/nginx/access.log", "format": "text"}


def config_url(agent) -> str:
    return f"/api/v1/agents/{agent.pk}/config"


def test_a_new_agent_has_version_1_and_the_default_config(viewer_client, org):
    agent = AgentFactory(organization=org)
    r = viewer_client.get(config_url(agent))
    assert r.status_code == 200, r.json()
    assert r.json()["version"] == 1 and r.json()["config"] == DEFAULT
    assert len(r.json()["hash"]) == 64 and r.json()["updated_at"].endswith("Z")


def test_put_replaces_the_config_fills_defaults_and_bumps_the_version(member_client, org):
    agent = AgentFactory(organization=org)
    before = member_client.get(f"/api/v1/agents/{agent.pk}").json()["config_hash"]
    first_hash = member_client.get(config_url(agent)).json()["hash"]
    r = member_client.put(
        config_url(agent), {"version": 1, "config": {"log_sources": [NGINX], "retention_hours": 24}}, format="json"
    )
    assert r.status_code == 200, r.json()
    assert r.json()["version"] == 2
    assert r.json()["config"] == {**DEFAULT, "log_sources": [NGINX], "retention_hours": 24}
    assert r.json()["hash"] != first_hash
    assert member_client.get(config_url(agent)).json() == r.json()
    assert member_client.get(f"/api/v1/agents/{agent.pk}").json()["config_hash"] != before
    assert AuditEvent.objects.filter(action="agent_config.updated", target_id=str(agent.pk)).count() == 1


def test_the_hash_is_stable_for_the_same_content(member_client, org):
    one, two = AgentFactory(organization=org), AgentFactory(organization=org)
    body = {"log_sources": [NGINX], "heartbeat_interval_seconds": 15}
    h1 = member_client.put(config_url(one), {"version": 1, "config": body}, format="json").json()["hash"]
    reordered = {"heartbeat_interval_seconds": 15, "log_sources": [{"format": "text", **NGINX}]}
    h2 = member_client.put(config_url(two), {"version": 1, "config": reordered}, format="json").json()["hash"]
    assert h1 == h2


def test_optimistic_locking(member_client, org):
    agent = AgentFactory(organization=org)
    assert member_client.put(config_url(agent), {"version": 1, "config": {}}, format="json").status_code == 200
    stale = assert_error(
        member_client.put(config_url(agent), {"version": 1, "config": {}}, format="json"), 409, "version_conflict"
    )
    assert stale["details"]["current_version"] == 2
    missing = assert_error(member_client.put(config_url(agent), {"config": {}}, format="json"), 400)
    assert "version" in missing["details"]
    assert member_client.get(config_url(agent)).json()["version"] == 2


@pytest.mark.parametrize(
    "config, field",
    [
        ({"unknown": 1}, "config.unknown"),
        ({"log_sources": [{**NGINX, "extra": 1}]}, "config.log_sources.0.extra"),
        ({"log_sources": [{**NGINX, "name": "Bad Name"}]}, "config.log_sources.0.name"),
        ({"log_sources": "nginx"}, "config.log_sources"),
        ({"log_sources": [{**NGINX, "path": "relative/log"}]}, "config.log_sources.0.path"),
        ({"log_sources": [{**NGINX, "format": "xml"}]}, "config.log_sources.0.format"),
        ({"log_sources": [NGINX, NGINX]}, "config.log_sources"),
        ({"log_sources": [{**NGINX, "name": f"s{i}"} for i in range(51)]}, "config.log_sources"),
        ({"heartbeat_interval_seconds": 4}, "config.heartbeat_interval_seconds"),
        ({"heartbeat_interval_seconds": 301}, "config.heartbeat_interval_seconds"),
        ({"metrics_interval_seconds": 9}, "config.metrics_interval_seconds"),
        ({"retention_hours": 8761}, "config.retention_hours"),
        ({"retention_hours": True}, "config.retention_hours"),
    ],
)
def test_invalid_configs_are_rejected_naming_the_field(member_client, org, config, field):
    agent = AgentFactory(organization=org)
    r = member_client.put(config_url(agent), {"version": 1, "config": config}, format="json")
    assert field in assert_error(r, 400, "validation_error")["details"]
    assert member_client.get(config_url(agent)).json()["version"] == 1


def test_viewers_cannot_change_a_config(viewer_client, org):
    agent = AgentFactory(organization=org)
    assert_error(viewer_client.put(config_url(agent), {"version": 1, "config": {}}, format="json"), 403)


def test_another_organizations_agent_config_is_not_found(other_admin_client, org):
    agent = AgentFactory(organization=org)
    assert_error(other_admin_client.get(config_url(agent)), 404)
    assert_error(other_admin_client.put(config_url(agent), {"version": 1, "config": {}}, format="json"), 404)
