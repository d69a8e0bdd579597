import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from agents import heartbeats
from agents.models import Agent
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/edge/register"
COMPAT_HEARTBEAT = "/api/v1/edge/heartbeat"


def heartbeat_url(agent_id) -> str:
    return f"/api/v1/edge/agents/{agent_id}/heartbeat"


@pytest.fixture
def edge_key(org):
    return make_key(org)


@pytest.fixture
def edge_client(edge_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=edge_key[1])
    return client


def key_client(org, permissions) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(org, permissions=permissions)[1])
    return client


def test_register_creates_then_finds_the_agent_by_name(edge_client, edge_key, member_client):
    first = edge_client.post(
        REGISTER,
        {"name": "store-01", "hostname": "h1", "os": "linux", "version": "1.0", "labels": {"env": "prod"}},
        format="json",
        REMOTE_ADDR="10.1.1.1",
    )
    assert first.status_code == 201, first.json()
    body = first.json()
    assert (body["hostname"], body["os"], body["version"], body["labels"]) == ("h1", "linux", "1.0", {"env": "prod"})
    assert body["ip_address"] == "10.1.1.1" and body["registered_at"].endswith("Z")
    assert body == member_client.get(f"/api/v1/agents/{body['id']}").json()

    again = edge_client.post(
        REGISTER,
        {"name": "store-01", "hostname": "h2", "version": "1.1", "labels": {"env": "dev"}},
        format="json",
        REMOTE_ADDR="10.1.1.2",
    )
    assert again.status_code == 200, again.json()
    assert again.json()["id"] == body["id"]
    assert (again.json()["hostname"], again.json()["version"], again.json()["ip_address"]) == ("h2", "1.1", "10.1.1.2")
    assert again.json()["labels"] == {"env": "prod"}  # labels belong to the people managing the fleet
    assert Agent.objects.count() == 1
    agent = Agent.objects.get()
    assert agent.registered_by_key_id == edge_key[0].pk
    assert AuditEvent.objects.filter(action="agent.registered", actor_type="api_key").count() == 2


def test_register_adopts_a_pre_provisioned_agent(edge_client, member_client):
    created = member_client.post("/api/v1/agents", {"name": "pos-7", "labels": {"site": "a"}}, format="json").json()
    r = edge_client.post(REGISTER, {"name": "pos-7", "hostname": "pos"}, format="json")
    assert r.status_code == 200 and r.json()["id"] == created["id"] and r.json()["labels"] == {"site": "a"}


def test_register_is_scoped_to_the_keys_organization(edge_client, other_org):
    foreign = AgentFactory(organization=other_org, name="store-01")
    r = edge_client.post(REGISTER, {"name": "store-01"}, format="json")
    assert r.status_code == 201 and r.json()["id"] != str(foreign.pk)


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "a", "labels": {"bad key": "x"}}, "labels"),
        ({"name": "a", "hostname": "h" * 256}, "hostname"),
    ],
)
def test_register_rejects_bad_input(edge_client, body, field):
    assert field in assert_error(edge_client.post(REGISTER, body, format="json"), 400)["details"]


def test_register_needs_the_permission(org):
    assert_error(key_client(org, ["edge:heartbeat"]).post(REGISTER, {"name": "a"}, format="json"), 403)
    assert_error(APIClient().post(REGISTER, {"name": "a"}, format="json"), 401, "not_authenticated")


def test_a_jwt_is_not_an_edge_credential(admin_client):
    assert_error(admin_client.post(REGISTER, {"name": "a"}, format="json"), 401, "not_authenticated")


def test_heartbeat_makes_the_agent_online_then_offline_after_the_threshold(
    edge_client, member_client, org, clock, settings
):
    agent = AgentFactory(organization=org)
    r = edge_client.post(
        heartbeat_url(agent.pk),
        {"status": "online", "version": "2.0", "metrics": {"cpu": 12.5, "memory": 40, "disk": {"/": 70}}},
        format="json",
        REMOTE_ADDR="10.9.9.9",
    )
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["status"] == "acknowledged" and body["streams"] == []
    assert body["server_time"].endswith("Z") and body["config_hash"] == agent.config_hash
    shown = member_client.get(f"/api/v1/agents/{agent.pk}").json()
    assert shown["status"] == "online" and shown["reported_status"] == "online"
    assert shown["version"] == "2.0" and shown["ip_address"] == "10.9.9.9"
    assert shown["system_metrics"] == {"cpu": 12.5, "memory": 40, "disk": {"/": 70}}
    clock.advance(89)
    assert member_client.get(f"/api/v1/agents/{agent.pk}").json()["status"] == "online"
    clock.advance(2)
    assert member_client.get(f"/api/v1/agents/{agent.pk}").json()["status"] == "offline"
    assert member_client.get("/api/v1/agents", {"status": "offline"}).json()["total"] == 1


def test_reported_error_and_offline(edge_client, member_client, org):
    agent = AgentFactory(organization=org)
    edge_client.post(heartbeat_url(agent.pk), {"status": "error"}, format="json")
    assert member_client.get(f"/api/v1/agents/{agent.pk}").json()["status"] == "error"
    edge_client.post(heartbeat_url(agent.pk), {"status": "offline"}, format="json")
    assert member_client.get(f"/api/v1/agents/{agent.pk}").json()["status"] == "offline"


def test_config_status_follows_the_agents_reports(edge_client, member_client, org):
    agent = AgentFactory(organization=org)
    url = f"/api/v1/agents/{agent.pk}"
    assert member_client.get(url).json()["config_status"] == "unknown"
    current = edge_client.post(heartbeat_url(agent.pk), {"status": "online"}, format="json").json()["config_hash"]
    failed = {"hash": current, "state": "failed", "errors": [{"metric": "x", "message": "bad pattern"}]}
    edge_client.post(heartbeat_url(agent.pk), {"status": "online", "config_status": failed}, format="json")
    assert member_client.get(url).json()["config_status"] == "failed"
    applied = {"hash": current, "state": "applied"}
    edge_client.post(heartbeat_url(agent.pk), {"status": "online", "config_status": applied}, format="json")
    shown = member_client.get(url).json()
    assert shown["config_status"] == "in_sync" and shown["applied_config_hash"] == current
    member_client.put(f"{url}/config", {"version": 1, "config": {"retention_hours": 2}}, format="json")
    shown = member_client.get(url).json()
    assert shown["config_status"] == "pending" and shown["config_hash"] != current
    r = edge_client.post(heartbeat_url(agent.pk), {"status": "online"}, format="json")
    assert r.json()["config_hash"] == shown["config_hash"]


def test_compat_heartbeat_with_agent_id_in_the_body(edge_client, member_client, org):
    agent = AgentFactory(organization=org)
    r = edge_client.post(COMPAT_HEARTBEAT, {"agent_id": str(agent.pk), "status": "online"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert member_client.get(f"/api/v1/agents/{agent.pk}").json()["status"] == "online"
    assert (
        "agent_id"
        in assert_error(
            edge_client.post(COMPAT_HEARTBEAT, {"agent_id": "nope", "status": "online"}, format="json"), 400
        )["details"]
    )
    assert (
        "agent_id"
        in assert_error(edge_client.post(COMPAT_HEARTBEAT, {"status": "online"}, format="json"), 400)["details"]
    )
    assert_error(
        edge_client.post(COMPAT_HEARTBEAT, {"agent_id": str(uuid.uuid4()), "status": "online"}, format="json"),
        404,
        "not_found",
    )


def test_heartbeat_for_another_organizations_agent_is_404(edge_client, other_org):
    foreign = AgentFactory(organization=other_org)
    assert_error(edge_client.post(heartbeat_url(foreign.pk), {"status": "online"}, format="json"), 404)
    assert Agent.objects.get(pk=foreign.pk).last_heartbeat_at is None
    assert_error(edge_client.post(heartbeat_url(uuid.uuid4()), {"status": "online"}, format="json"), 404)
    assert_error(edge_client.post("/api/v1/edge/agents/not-a-uuid/heartbeat", {"status": "online"}, format="json"), 404)


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "status"),
        ({"status": "sleeping"}, "status"),
        ({"status": "online", "version": 5}, "version"),
        ({"status": "online", "metrics": [1]}, "metrics"),
        ({"status": "online", "metrics": {"x": "y" * 20000}}, "metrics"),
        ({"status": "online", "metrics": {"a": {"b": {"c": {"d": 1}}}}}, "metrics"),
        ({"status": "online", "config_status": {"state": "applied"}}, "config_status.hash"),
        ({"status": "online", "config_status": {"hash": "h", "state": "maybe"}}, "config_status.state"),
        ({"status": "online", "config_status": {"hash": "h", "state": ["applied"]}}, "config_status.state"),
        ({"status": {"a": 1}}, "status"),
        (
            {"status": "online", "config_status": {"hash": "h", "state": "failed", "errors": [{}]}},
            "config_status.errors.0.message",
        ),
    ],
)
def test_heartbeat_rejects_bad_bodies_naming_the_field(edge_client, org, body, field):
    agent = AgentFactory(organization=org)
    details = assert_error(edge_client.post(heartbeat_url(agent.pk), body, format="json"), 400)["details"]
    assert field in details, details
    assert Agent.objects.get(pk=agent.pk).last_heartbeat_at is None


def test_heartbeat_needs_the_permission(org):
    agent = AgentFactory(organization=org)
    client = key_client(org, ["edge:register"])
    assert_error(client.post(heartbeat_url(agent.pk), {"status": "online"}, format="json"), 403, "permission_denied")


def test_a_warm_heartbeat_costs_one_write(edge_client, org, django_assert_num_queries):
    agent = AgentFactory(organization=org)
    body = {"status": "online", "metrics": {"cpu": 1}, "config_status": {"hash": "h", "state": "applied"}}
    edge_client.post(heartbeat_url(agent.pk), body, format="json")  # records cached, last use written
    # The UPDATE; without Redis also the key's record (read every time, so that a revocation by
    # `manage.py` in another process bites at once).
    with django_assert_num_queries(1 if settings.REDIS_URL else 2):
        assert edge_client.post(heartbeat_url(agent.pk), body, format="json").status_code == 200


def test_a_cold_heartbeat_costs_at_most_five_queries(edge_client, org, django_assert_max_num_queries):
    agent = AgentFactory(organization=org)
    # key lookup, last_used_at, agent identity, stream instructions, the write
    with django_assert_max_num_queries(5):
        assert edge_client.post(heartbeat_url(agent.pk), {"status": "online"}, format="json").status_code == 200


def test_the_edge_rate_limit_is_per_agent(edge_client, org, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "edge": "2/m"}
    one, two = AgentFactory(organization=org), AgentFactory(organization=org)
    for _ in range(2):
        r = edge_client.post(heartbeat_url(one.pk), {"status": "online"}, format="json")
        assert r.status_code == 200 and r["X-RateLimit-Limit"] == "2"
    limited = edge_client.post(heartbeat_url(one.pk), {"status": "online"}, format="json")
    assert_error(limited, 429, "rate_limited")
    assert int(limited["Retry-After"]) >= 1
    assert_error(edge_client.post(COMPAT_HEARTBEAT, {"agent_id": str(one.pk), "status": "online"}, format="json"), 429)
    assert edge_client.post(heartbeat_url(two.pk), {"status": "online"}, format="json").status_code == 200


def test_register_is_rate_limited_per_key(org, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "edge": "1/m"}
    first, second = key_client(org, ["edge:register"]), key_client(org, ["edge:register"])
    assert first.post(REGISTER, {"name": "a"}, format="json").status_code == 201
    assert_error(first.post(REGISTER, {"name": "b"}, format="json"), 429)
    assert second.post(REGISTER, {"name": "b"}, format="json").status_code == 201


@pytest.mark.django_db(transaction=True)
def test_concurrent_heartbeats_are_committed_before_they_are_answered(org):
    """Many request threads at once (group commit): each answer implies its row is in the database,
    read here on another connection than the one that wrote it."""
    agents = [AgentFactory(organization=org) for _ in range(24)]
    raw = make_key(org, permissions=["edge:heartbeat"])[1]
    seen = {}

    def beat(agent):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=raw)
        r = client.post(heartbeat_url(agent.pk), {"status": "error", "version": f"v-{agent.pk}"}, format="json")
        with connections["default"].cursor():  # this thread's own connection, after the answer
            row = Agent.objects.filter(pk=agent.pk).values("reported_status", "version").first()
        connections["default"].close()
        seen[agent.pk] = (r.status_code, row)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(beat, agents))
    assert {agent.pk: (200, {"reported_status": "error", "version": f"v-{agent.pk}"}) for agent in agents} == seen


@pytest.mark.django_db(transaction=True)
def test_a_row_the_database_refuses_does_not_block_the_others_of_its_batch(org, caplog):
    good, bad = AgentFactory(organization=org), AgentFactory(organization=org)
    now = timezone.now()
    failures = heartbeats.write_batch(
        {
            good.pk: {"reported_status": "online", "last_heartbeat_at": now},
            # A value no database accepts (a set is not JSON), as if validation had let it through.
            bad.pk: {"reported_status": "online", "last_heartbeat_at": now, "system_metrics": {1, 2}},
        }
    )
    assert set(failures) == {bad.pk}
    assert Agent.objects.get(pk=good.pk).last_heartbeat_at == now
    assert Agent.objects.get(pk=bad.pk).last_heartbeat_at is None
    assert f"heartbeat of agent {bad.pk} refused by the database" in caplog.text


NUL = "\x00"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"status": "online", "version": f"1.0{NUL}"}, "version"),
        ({"status": "online", "metrics": {"cpu": f"a{NUL}b"}}, "metrics.cpu"),
        ({"status": "online", "metrics": {f"c{NUL}pu": 1}}, "metrics"),
        (
            {"status": "online", "config_status": {"hash": "h", "state": "failed", "errors": [{"message": NUL}]}},
            "config_status.errors.0.message",
        ),
        ({"status": "online", "config_status": {"hash": "h" * 65, "state": "applied"}}, "config_status.hash"),
    ],
)
def test_what_the_database_cannot_store_is_a_400_and_others_keep_beating(edge_client, org, body, field):
    agent, other = AgentFactory(organization=org), AgentFactory(organization=org)
    details = assert_error(edge_client.post(heartbeat_url(agent.pk), body, format="json"), 400)["details"]
    assert field in details, details
    assert edge_client.post(heartbeat_url(other.pk), {"status": "online"}, format="json").status_code == 200
    assert Agent.objects.get(pk=other.pk).last_heartbeat_at is not None
    assert Agent.objects.get(pk=agent.pk).last_heartbeat_at is None


@pytest.mark.parametrize(
    "forwarded, stored",
    [
        ("203.0.113.5:4711", "203.0.113.5"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::2", "2001:db8::2"),
        ("not-an-address", "127.0.0.1"),
        ("unknown, 198.51.100.7", "198.51.100.7"),
    ],
)
def test_forwarded_addresses_are_parsed_or_fall_back_to_the_socket(edge_client, org, settings, forwarded, stored):
    settings.TRUSTED_PROXY_COUNT = 1  # behind one proxy, as the production recipe runs it
    agent = AgentFactory(organization=org)
    r = edge_client.post(heartbeat_url(agent.pk), {"status": "online"}, format="json", HTTP_X_FORWARDED_FOR=forwarded)
    assert r.status_code == 200, r.content
    assert Agent.objects.get(pk=agent.pk).ip_address == stored


def test_a_deleted_agents_heartbeat_is_404_even_after_it_was_cached(edge_client, member_client, org):
    agent = AgentFactory(organization=org)
    assert edge_client.post(heartbeat_url(agent.pk), {"status": "online"}, format="json").status_code == 200
    assert member_client.delete(f"/api/v1/agents/{agent.pk}").status_code == 204
    assert_error(edge_client.post(heartbeat_url(agent.pk), {"status": "online"}, format="json"), 404)


def test_the_heartbeat_reports_each_sources_state_and_the_agent_shows_it(edge_client, member_client, org):
    agent = AgentFactory(organization=org)
    sources = [
        {"name": "nginx", "path": "/var/log/nginx/access.log", "state": "reading", "lines": 120, "bytes": 9000},
        {
            "name": "app",
            "path": "/var/log/app.log",
            "state": "missing",
            "lines": 0,
            "bytes": 0,
            "error": "no such file",
        },
    ]
    r = edge_client.post(heartbeat_url(agent.pk), {"status": "online", "sources": sources}, format="json")
    assert r.status_code == 200, r.json()
    shown = member_client.get(f"/api/v1/agents/{agent.pk}").json()["sources"]
    assert shown == sources
    assert member_client.get("/api/v1/agents").json()["items"][0]["sources"][1]["state"] == "missing"


@pytest.mark.parametrize(
    "sources, field",
    [
        ("nginx", "sources"),
        ([{"name": "a", "path": "/x", "state": "sleeping"}], "sources.0.state"),
        ([{"path": "/x", "state": "reading"}], "sources.0.name"),
        ([{"name": "a", "path": "/x", "state": "reading", "lines": -1}], "sources.0.lines"),
        ([{"name": "a", "path": "/x", "state": "reading", "bytes": 2**70}], "sources.0.bytes"),
        ([{"name": "a" * 65, "path": "/x", "state": "reading"}], "sources.0.name"),
        ([{"name": "a", "path": "/x", "state": "reading"}] * 101, "sources"),
    ],
)
def test_bad_source_reports_are_refused_naming_the_field(edge_client, org, sources, field):
    agent = AgentFactory(organization=org)
    r = edge_client.post(heartbeat_url(agent.pk), {"status": "online", "sources": sources}, format="json")
    assert field in assert_error(r, 400)["details"]
