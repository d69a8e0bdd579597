from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Role
from agents.models import Agent
from agents.tests.factories import AgentFactory
from logfleet.testing import ResourceBattery, assert_error

pytestmark = pytest.mark.django_db

AGENTS = "/api/v1/agents"


def agent_url(agent_id) -> str:
    return f"{AGENTS}/{agent_id}"


def beat(agent, *, seconds_ago: float, reported: str = "online"):
    Agent.objects.filter(pk=agent.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(seconds=seconds_ago), reported_status=reported
    )


def test_agents_resource_battery(org, other_org, role_clients):
    ResourceBattery(
        list_url=AGENTS,
        detail_url=agent_url,
        make_in=lambda organization: AgentFactory(organization=organization).pk,
        writes=[("post", AGENTS, {"name": "new-agent"})],
        forbidden_roles=(Role.VIEWER,),
    ).run(org=org, other_org=other_org, role_clients=role_clients)


def test_create_an_agent_with_labels(member_client, org):
    r = member_client.post(
        AGENTS, {"name": "store-01", "description": "Front", "labels": {"env": "prod"}}, format="json"
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["name"] == "store-01" and body["labels"] == {"env": "prod"}
    assert body["status"] == "offline" and body["reported_status"] is None and body["last_heartbeat_at"] is None
    assert body["config_status"] == "unknown" and body["config_version"] == 1 and len(body["config_hash"]) == 64
    assert body["connected"] is False
    assert set(body) == {
        "id",
        "name",
        "description",
        "labels",
        "status",
        "reported_status",
        "version",
        "hostname",
        "os",
        "ip_address",
        "system_metrics",
        "last_heartbeat_at",
        "connected",
        "config_version",
        "config_hash",
        "applied_config_hash",
        "config_status",
        "sources",
        "registered_at",
        "created_at",
        "updated_at",
    }
    assert AuditEvent.objects.filter(action="agent.created", target_id=body["id"]).exists()


def test_agent_names_are_unique_per_organization(member_client, org, other_org):
    AgentFactory(organization=other_org, name="store-01")
    assert member_client.post(AGENTS, {"name": "store-01"}, format="json").status_code == 201
    assert_error(member_client.post(AGENTS, {"name": "store-01"}, format="json"), 409, "conflict")
    other = member_client.post(AGENTS, {"name": "store-02"}, format="json").json()
    assert_error(member_client.patch(agent_url(other["id"]), {"name": "store-01"}, format="json"), 409)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": "a", "labels": {"1bad": "x"}}, "labels"),
        ({"name": "a", "labels": {"k": 1}}, "labels"),
        ({"name": "a", "labels": {"k": "v" * 257}}, "labels"),
        ({"name": "a", "labels": {f"k{i}": "v" for i in range(33)}}, "labels"),
        ({"name": "a", "labels": ["k"]}, "labels"),
        ({"name": "a", "description": "d" * 1025}, "description"),
    ],
)
def test_create_rejects_bad_input(member_client, body, field):
    assert field in assert_error(member_client.post(AGENTS, body, format="json"), 400)["details"]
    assert Agent.objects.count() == 0


def test_update_name_description_and_labels_only(member_client, org):
    agent = AgentFactory(organization=org, labels={"env": "dev"})
    r = member_client.patch(
        agent_url(agent.pk),
        {"labels": {"env": "prod"}, "description": "d", "status": "online", "config_hash": "x", "organization": "y"},
        format="json",
    )
    assert r.status_code == 200, r.json()
    assert r.json()["labels"] == {"env": "prod"} and r.json()["description"] == "d"
    assert r.json()["status"] == "offline" and r.json()["config_hash"] != "x"


def test_status_is_derived_from_the_last_heartbeat(member_client, org, settings):
    fresh, stale, failing, never, said_offline = (AgentFactory(organization=org) for _ in range(5))
    beat(fresh, seconds_ago=10)
    beat(stale, seconds_ago=91)
    beat(failing, seconds_ago=10, reported="error")
    beat(said_offline, seconds_ago=5, reported="offline")

    def statuses(**params):
        return {item["id"]: item["status"] for item in member_client.get(AGENTS, params).json()["items"]}

    assert statuses() == {
        str(fresh.pk): "online",
        str(stale.pk): "offline",
        str(failing.pk): "error",
        str(never.pk): "offline",
        str(said_offline.pk): "offline",
    }
    assert set(statuses(status="online")) == {str(fresh.pk)}
    assert set(statuses(status="error")) == {str(failing.pk)}
    assert set(statuses(status="offline")) == {str(stale.pk), str(never.pk), str(said_offline.pk)}
    assert member_client.get(AGENTS, {"status": "offline"}).json()["total"] == 3
    assert_error(member_client.get(AGENTS, {"status": "bar"}), 400, "validation_error")


def test_filters_by_labels_and_search(member_client, org):
    a = AgentFactory(organization=org, name="Store-North", labels={"env": "prod", "region": "eu"})
    b = AgentFactory(organization=org, name="warehouse", hostname="north-host", labels={"env": "prod"})
    AgentFactory(organization=org, name="lab", labels={"env": "dev", "region": "eu"})

    def names(params):
        return [item["name"] for item in member_client.get(AGENTS, params).json()["items"]]

    assert names({"label": "env:prod"}) == ["Store-North", "warehouse"]
    assert names({"label": ["env:prod", "region:eu"]}) == ["Store-North"]
    assert names({"label": "env:nope"}) == []
    assert names({"search": "NORTH"}) == [a.name, b.name]
    assert_error(member_client.get(AGENTS, {"label": "no-colon"}), 400, "validation_error")


def test_ordering(member_client, org):
    first = AgentFactory(organization=org, name="b")
    second = AgentFactory(organization=org, name="a")
    never = AgentFactory(organization=org, name="c")
    beat(first, seconds_ago=100)
    beat(second, seconds_ago=10)

    def names(ordering):
        return [item["name"] for item in member_client.get(AGENTS, {"ordering": ordering}).json()["items"]]

    assert names("name") == ["a", "b", "c"] and names("-name") == ["c", "b", "a"]
    assert names("last_heartbeat_at") == ["b", "a", "c"]
    assert names("-last_heartbeat_at") == ["a", "b", "c"]
    assert names("created_at") == ["b", "a", "c"] and names("-created_at") == ["c", "a", "b"]
    assert never.name == "c"
    assert_error(member_client.get(AGENTS, {"ordering": "foo"}), 400, "validation_error")


def test_delete_an_agent(member_client, org):
    agent = AgentFactory(organization=org)
    assert member_client.delete(agent_url(agent.pk)).status_code == 204
    assert_error(member_client.get(agent_url(agent.pk)), 404)
    assert AuditEvent.objects.filter(action="agent.deleted", target_id=str(agent.pk)).exists()
