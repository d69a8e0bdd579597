"""An agent's labels and its configuration each have one rule (agents.labels, agents.config) that
every surface writing them goes through, with the same words; the admin writes agents through the
agents service too."""

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from agents.models import Agent
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db

AGENTS = "/api/v1/agents"
ADMIN = "/admin/agents/agent"
NGINX = {"name": "nginx", "path": "/var/log/nginx/access.log", "format": "text"}

BAD_LABELS = [
    pytest.param({"1bad": "x"}, "label key '1bad' must match [a-zA-Z_][a-zA-Z0-9_.-]{0,62}", id="key"),
    pytest.param({"k": 1}, "label 'k' must be a string of at most 256 characters", id="value type"),
    pytest.param({"k": "v" * 257}, "label 'k' must be a string of at most 256 characters", id="value length"),
    pytest.param({f"k{i}": "v" for i in range(33)}, "at most 32 labels", id="count"),
    pytest.param(["k"], "must be an object of string keys and string values", id="not an object"),
]


@pytest.fixture
def edge_client(org):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(org, permissions=["edge:register"])[1])
    return client


@pytest.mark.parametrize("labels, message", BAD_LABELS)
def test_every_surface_that_writes_labels_refuses_bad_ones_alike(member_client, edge_client, org, labels, message):
    agent = AgentFactory(organization=org, labels={"env": "dev"})
    writes = [
        member_client.post(AGENTS, {"name": "new", "labels": labels}, format="json"),
        member_client.patch(f"{AGENTS}/{agent.pk}", {"labels": labels}, format="json"),
        edge_client.post("/api/v1/edge/register", {"name": "edge-new", "labels": labels}, format="json"),
    ]
    for r in writes:
        assert assert_error(r, 400, "validation_error")["details"] == {"labels": message}
    assert list(Agent.objects.values_list("name", flat=True)) == [agent.name]
    agent.refresh_from_db()
    assert agent.labels == {"env": "dev"}


@pytest.mark.parametrize(
    "config, details",
    [
        ({"unknown": 1, "retention_hours": 0}, {"config.unknown": "unknown key"}),
        ("nginx", {"config": "Invalid data. Expected a dictionary, but got str."}),
        (
            {"log_sources": [{**NGINX, "path": "relative/log"}]},
            {"config.log_sources.0.path": "must be an absolute path"},
        ),
        (
            {"log_sources": [NGINX, {"name": "Bad Name"}], "heartbeat_interval_seconds": 4},
            {
                "config.log_sources.1.name": "must be 1 to 64 of a-z, 0-9, _ and -",
                "config.log_sources.1.path": "This field is required.",
                "config.heartbeat_interval_seconds": "Ensure this value is greater than or equal to 5.",
            },
        ),
        ({"log_sources": [NGINX, NGINX]}, {"config.log_sources": "source names must be unique: nginx"}),
        (
            {"log_sources": [{**NGINX, "format": "xml"}]},
            {"config.log_sources.0.format": '"xml" is not a valid choice.'},
        ),
        ({"retention_hours": True}, {"config.retention_hours": "A valid integer is required."}),
    ],
)
def test_a_bad_config_is_refused_naming_each_problem(member_client, org, config, details):
    agent = AgentFactory(organization=org)
    r = member_client.put(f"{AGENTS}/{agent.pk}/config", {"version": 1, "config": config}, format="json")
    assert assert_error(r, 400, "validation_error")["details"] == details
    agent.refresh_from_db()
    assert agent.config_version == 1


def test_a_bad_config_and_a_missing_version_are_told_at_once(member_client, org):
    agent = AgentFactory(organization=org)
    r = member_client.put(f"{AGENTS}/{agent.pk}/config", {"config": {"retention_hours": 0}}, format="json")
    assert set(assert_error(r, 400)["details"]) == {"version", "config.retention_hours"}


def test_a_config_is_stored_as_the_rule_leaves_it(member_client, org):
    agent = AgentFactory(organization=org)
    body = {"version": 1, "config": {"log_sources": [{"name": " nginx ", "path": " /var/log/a.log "}]}}
    r = member_client.put(f"{AGENTS}/{agent.pk}/config", body, format="json")
    assert r.status_code == 200, r.json()
    agent.refresh_from_db()
    assert agent.config["log_sources"] == [{"name": "nginx", "path": "/var/log/a.log", "format": "text"}]
    assert agent.config["heartbeat_interval_seconds"] == 30


def test_an_agent_added_in_the_admin_is_created_by_the_service(operator_client, member_client, org):
    r = operator_client.post(f"{ADMIN}/add/", {"organization": str(org.pk), "name": "from-admin", "description": "d"})
    assert r.status_code == 302, r.context["adminform"].form.errors
    agent = Agent.objects.get(name="from-admin")
    assert AuditEvent.objects.filter(action="agent.created", target_id=str(agent.pk)).exists()
    # What the agent should run is known at once, as for an agent created through the API.
    made = member_client.post(AGENTS, {"name": "from-api"}, format="json").json()
    assert len(agent.config_hash) == 64 and agent.config_hash == made["config_hash"]


def test_the_admin_add_form_names_the_organizations_limit_of_agents(operator_client, org, settings):
    settings.MAX_AGENTS_PER_ORG = 1
    AgentFactory(organization=org)
    r = operator_client.post(f"{ADMIN}/add/", {"organization": str(org.pk), "name": "one-too-many"})
    assert r.status_code == 200
    assert r.context["adminform"].form.non_field_errors() == ["An organization may have at most 1 agents"]
    assert Agent.objects.count() == 1


def test_an_agent_changed_in_the_admin_is_updated_by_the_service(operator_client, org, other_org):
    agent = AgentFactory(organization=org, name="before")
    taken = AgentFactory(organization=org, name="taken")
    change = f"{ADMIN}/{agent.pk}/change/"
    r = operator_client.post(change, {"name": taken.name, "description": ""})
    assert r.status_code == 200  # beside the field, not the unique index's 500
    assert r.context["adminform"].form.non_field_errors() == ["Agent with this Organization and Name already exists."]
    moved = {"organization": str(other_org.pk), "name": "after", "description": "d"}
    assert operator_client.post(change, moved).status_code == 302  # the organization is shown, not changed
    agent.refresh_from_db()
    assert (agent.name, agent.description, agent.organization_id) == ("after", "d", org.pk)
    event = AuditEvent.objects.get(action="agent.updated", target_id=str(agent.pk))
    assert event.metadata == {"fields": ["description", "name"]}
