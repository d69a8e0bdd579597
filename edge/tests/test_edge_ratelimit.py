"""The Edge API's rate limit (API.md section 1): only authenticated requests count, per key and owned agent."""

import uuid

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from agents.tests.factories import AgentFactory
from apikeys import keys
from apikeys import services as key_services
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db

ONLINE = {"status": "online"}


def heartbeat_url(agent_id) -> str:
    return f"/api/v1/edge/agents/{agent_id}/heartbeat"


def client_with(raw_key: str | None) -> APIClient:
    client = APIClient()
    if raw_key is not None:
        client.credentials(HTTP_X_API_KEY=raw_key)
    return client


@pytest.fixture
def edge_limit(settings):
    # A low Edge limit, so that a test reaches it in a few requests (hourly: a test cannot straddle
    # the end of a window in practice).
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "edge": "3/h"}
    return 3


@pytest.fixture
def victim(org):
    """An agent and its own key: the traffic that must keep flowing."""
    return AgentFactory(organization=org), client_with(make_key(org)[1])


def assert_victim_untouched(victim, limit):
    agent, client = victim
    r = client.post(heartbeat_url(agent.pk), ONLINE, format="json")
    assert r.status_code == 200, r.json()
    assert r["X-RateLimit-Remaining"] == str(limit - 1)


def test_requests_without_a_key_do_not_spend_an_agents_limit(victim, edge_limit):
    agent, _ = victim
    for _ in range(2 * edge_limit):
        r = client_with(None).post(heartbeat_url(agent.pk), ONLINE, format="json")
        assert_error(r, 401, "not_authenticated")
        assert "X-RateLimit-Limit" not in r
    compat = client_with(None).post("/api/v1/edge/heartbeat", {"agent_id": str(agent.pk), **ONLINE}, format="json")
    assert_error(compat, 401, "not_authenticated")
    assert_victim_untouched(victim, edge_limit)


def test_bad_keys_do_not_spend_an_agents_limit(victim, edge_limit, org):
    agent, _ = victim
    revoked, revoked_raw = make_key(org)
    key_services.api_key_revoke(key=revoked, actor=key_services.Actor())
    bad_keys = ["not-a-key", keys.generate(), revoked_raw]  # malformed, well-formed but unknown, revoked
    for raw in bad_keys * edge_limit:
        r = client_with(raw).post(heartbeat_url(agent.pk), ONLINE, format="json")
        assert_error(r, 401)
        assert "X-RateLimit-Limit" not in r
    assert_victim_untouched(victim, edge_limit)


def test_another_organizations_key_does_not_spend_an_agents_limit(victim, edge_limit, other_org):
    agent, _ = victim
    intruder = client_with(make_key(other_org)[1])
    for _ in range(edge_limit):
        assert_error(intruder.post(heartbeat_url(agent.pk), ONLINE, format="json"), 404, "not_found")
    assert_error(intruder.get(f"/api/v1/edge/sync-config?agent_id={agent.pk}"), 429, "rate_limited")
    assert_victim_untouched(victim, edge_limit)


def test_naming_agents_that_are_not_the_keys_counts_on_the_keys_own_bucket(edge_limit, org):
    """A key cannot escape its limit with made-up agent ids: they all share the key's bucket."""
    client = client_with(make_key(org)[1])
    for _ in range(edge_limit):
        assert_error(client.post(heartbeat_url(uuid.uuid4()), ONLINE, format="json"), 404)
    assert_error(client.post(heartbeat_url(uuid.uuid4()), ONLINE, format="json"), 429, "rate_limited")
    assert_error(client.post("/api/v1/edge/register", {"name": "a"}, format="json"), 429, "rate_limited")


def test_each_agent_of_a_fleet_key_has_its_own_bucket(edge_limit, org):
    client = client_with(make_key(org)[1])
    one, two = AgentFactory(organization=org), AgentFactory(organization=org)
    for _ in range(edge_limit):
        assert client.post(heartbeat_url(one.pk), ONLINE, format="json").status_code == 200
    assert_error(client.post(heartbeat_url(one.pk), ONLINE, format="json"), 429)
    assert_error(client.get(f"/api/v1/edge/agents/{one.pk}/metric-config"), 429)
    r = client.post(heartbeat_url(two.pk), ONLINE, format="json")
    assert r.status_code == 200 and r["X-RateLimit-Remaining"] == str(edge_limit - 1)
    assert client.post("/api/v1/edge/register", {"name": "new"}, format="json").status_code == 201


def test_an_unparsable_body_still_counts_on_the_keys_bucket(edge_limit, org):
    client = client_with(make_key(org)[1])
    for _ in range(edge_limit):
        r = client.post("/api/v1/edge/heartbeat", "{not json", content_type="application/json")
        assert_error(r, 400, "parse_error")
        assert "X-RateLimit-Limit" in r
    assert_error(client.post("/api/v1/edge/register", {"name": "a"}, format="json"), 429)


class CacheCalls:
    """The shared cache's public operations a request makes (the round trips, with Redis)."""

    OPERATIONS = (
        "get",
        "get_many",
        "set",
        "set_many",
        "add",
        "incr",
        "incr_with_expiry",
        "delete",
        "delete_many",
        "touch",
        "has_key",
    )

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self.depth = 0
        backend = type(caches["default"])
        for name in self.OPERATIONS:
            if hasattr(backend, name):
                monkeypatch.setattr(backend, name, self._recording(name, getattr(backend, name)))

    @staticmethod
    def counting() -> list[str]:
        """What counting one request costs: one round trip on Redis, ADD then INCR elsewhere."""
        return ["incr_with_expiry"] if hasattr(caches["default"], "incr_with_expiry") else ["add", "incr"]

    def _recording(self, name, original):
        def operation(backend, *args, **kwargs):
            if self.depth == 0:  # a backend's get_many may be built on its own get
                self.calls.append(name)
            self.depth += 1
            try:
                return original(backend, *args, **kwargs)
            finally:
                self.depth -= 1

        return operation


def test_a_warm_heartbeat_reads_the_cache_once_and_counts_once(victim, monkeypatch):
    agent, client = victim
    assert client.post(heartbeat_url(agent.pk), ONLINE, format="json").status_code == 200  # records cached
    calls = CacheCalls(monkeypatch)
    assert client.post(heartbeat_url(agent.pk), ONLINE, format="json").status_code == 200
    # One read of the key's records, the agent's identity and its stream instructions; the counter:
    # two round trips on Redis.
    assert calls.calls == ["get_many", *CacheCalls.counting()]


def test_a_warm_compat_heartbeat_reads_the_agents_records_once(victim, monkeypatch):
    agent, client = victim
    body = {"agent_id": str(agent.pk), **ONLINE}
    assert client.post("/api/v1/edge/heartbeat", body, format="json").status_code == 200
    calls = CacheCalls(monkeypatch)
    assert client.post("/api/v1/edge/heartbeat", body, format="json").status_code == 200
    # The key's records; the counter; the identity (read for the bucket, reused by the heartbeat)
    # and the stream instructions.
    assert sorted(calls.calls) == sorted(["get", "get", "get_many", *CacheCalls.counting()])
