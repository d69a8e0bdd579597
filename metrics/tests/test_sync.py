from itertools import pairwise

import pytest
from rest_framework.test import APIClient

from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error
from metrics.tests.helpers import nginx_example

pytestmark = pytest.mark.django_db


def sync_url(agent) -> str:
    return f"/api/v1/edge/agents/{agent.pk}/metric-config"


def heartbeat(edge_client, agent, **body):
    return edge_client.post(f"/api/v1/edge/agents/{agent.pk}/heartbeat", {"status": "online", **body}, format="json")


def test_sync_returns_what_the_agent_should_run_with_an_etag(edge_client, member_client, agent, org):
    selected = member_client.post(
        "/api/v1/metric-configs", {**nginx_example(), "agent_selector": {"env": "prod"}}, format="json"
    ).json()
    member_client.post(
        "/api/v1/metric-configs",
        {**nginx_example(), "name": "dev_only", "agent_selector": {"env": "dev"}},
        format="json",
    )
    member_client.post("/api/v1/metric-configs", {**nginx_example(), "name": "off", "enabled": False}, format="json")
    r = edge_client.get(sync_url(agent))
    assert r.status_code == 200, r.json()
    body = r.json()
    assert [config["id"] for config in body["configs"]] == [selected["id"]]
    assert body["configs"][0] == selected
    assert body["agent_config"]["heartbeat_interval_seconds"] == 30
    assert r["ETag"] == f'"{body["hash"]}"'
    assert heartbeat(edge_client, agent).json()["config_hash"] == body["hash"]
    assert member_client.get(f"/api/v1/agents/{agent.pk}").json()["config_hash"] == body["hash"]

    unchanged = edge_client.get(sync_url(agent), HTTP_IF_NONE_MATCH=r["ETag"])
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged["ETag"] == r["ETag"]


def test_the_hash_changes_with_anything_the_agent_runs(edge_client, member_client, agent):
    config = member_client.post("/api/v1/metric-configs", nginx_example(), format="json").json()
    hashes = [edge_client.get(sync_url(agent)).json()["hash"]]
    member_client.patch(f"/api/v1/metric-configs/{config['id']}", {"version": 1, "description": "x"}, format="json")
    hashes.append(edge_client.get(sync_url(agent)).json()["hash"])
    member_client.put(
        f"/api/v1/agents/{agent.pk}/config", {"version": 1, "config": {"retention_hours": 5}}, format="json"
    )
    hashes.append(edge_client.get(sync_url(agent)).json()["hash"])
    member_client.patch(
        f"/api/v1/metric-configs/{config['id']}", {"version": 2, "agent_selector": {"env": "dev"}}, format="json"
    )
    after_selector = edge_client.get(sync_url(agent)).json()
    assert after_selector["configs"] == []
    hashes.append(after_selector["hash"])
    member_client.patch(f"/api/v1/agents/{agent.pk}", {"labels": {"env": "dev"}}, format="json")
    relabelled = edge_client.get(sync_url(agent)).json()
    assert [c["id"] for c in relabelled["configs"]] == [config["id"]]
    hashes.append(relabelled["hash"])
    member_client.delete(f"/api/v1/metric-configs/{config['id']}")
    hashes.append(edge_client.get(sync_url(agent)).json()["hash"])
    assert all(before != after for before, after in pairwise(hashes)), hashes
    # The same bundle (this agent config, no metric config) is the same hash again.
    assert hashes[-1] == hashes[3]
    assert heartbeat(edge_client, agent).json()["config_hash"] == hashes[-1]


def test_an_agent_reporting_the_hash_applied_is_in_sync(edge_client, member_client, agent):
    member_client.post("/api/v1/metric-configs", nginx_example(), format="json")
    current = edge_client.get(sync_url(agent)).json()["hash"]
    heartbeat(edge_client, agent, config_status={"hash": current, "state": "applied"})
    assert member_client.get(f"/api/v1/agents/{agent.pk}").json()["config_status"] == "in_sync"


def test_compat_sync_path(edge_client, agent):
    r = edge_client.get("/api/v1/edge/sync-config", {"agent_id": str(agent.pk)})
    assert r.status_code == 200 and r.json()["hash"] == edge_client.get(sync_url(agent)).json()["hash"]
    assert (
        edge_client.get(
            "/api/v1/edge/sync-config", {"agent_id": str(agent.pk)}, HTTP_IF_NONE_MATCH=r["ETag"]
        ).status_code
        == 304
    )
    assert "agent_id" in assert_error(edge_client.get("/api/v1/edge/sync-config", {"agent_id": "x"}), 400)["details"]
    assert "agent_id" in assert_error(edge_client.get("/api/v1/edge/sync-config"), 400)["details"]


def test_sync_is_scoped_and_needs_the_permission(edge_client, other_org, org, agent):
    assert_error(edge_client.get(sync_url(AgentFactory(organization=other_org))), 404)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(org, permissions=["edge:heartbeat"])[1])
    assert_error(client.get(sync_url(agent)), 403, "permission_denied")
