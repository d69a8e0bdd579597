"""The schema and the validation are the same thing (issue 15): what the OpenAPI schema forbids is
refused, what it allows is accepted, through the shared mechanisms of logfleet/api (strict JSON types
in `validated_body`, strict query parameters in `validated_query`, closed objects, one credential per
request) and the schema hooks of logfleet/api/schema.py."""

import pytest
import yaml
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from agents.models import Agent
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api_client):
    return yaml.safe_load(api_client.get("/api/v1/schema").content)


# --- strings are strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("patch", "/api/v1/auth/me", {"name": 0}, "name"),
        ("patch", "/api/v1/organization", {"name": 12.5}, "name"),
        ("post", "/api/v1/agents", {"name": 7}, "name"),
        ("post", "/api/v1/agents", {"name": "a", "description": False}, "description"),
        ("post", "/api/v1/organization/members", {"email": "x@example.com", "name": 0, "role": "viewer"}, "name"),
        ("post", "/api/v1/api-keys", {"name": "k", "permissions": ["edge:heartbeat"], "expires_at": 1}, "expires_at"),
        ("post", "/api/v1/stream/start", {"agent_id": 1, "timeout_seconds": 30}, "agent_id"),
        ("post", "/api/v1/stream/start", {"agent_id": "x", "timeout_seconds": "30"}, "timeout_seconds"),
        ("post", "/api/v1/api-keys/{key}/rotate", {"grace_seconds": "60"}, "grace_seconds"),
        ("put", "/api/v1/agents/{agent}/config", {"version": True, "config": {}}, "version"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_not_coerced(admin_client, admin_user, method, url, body, field):
    agent = AgentFactory(organization=admin_user.organization, name="kept")
    key = make_key(admin_user.organization)[0]
    before = (admin_user.name, admin_user.organization.name, Agent.objects.count())
    r = getattr(admin_client, method)(url.format(agent=agent.pk, key=key.pk), body, format="json")
    assert field in assert_error(r, 400, "validation_error")["details"], r.json()
    admin_user.refresh_from_db()
    admin_user.organization.refresh_from_db()
    assert (admin_user.name, admin_user.organization.name, Agent.objects.count()) == before


def test_a_nested_value_of_the_wrong_type_is_named_by_its_path(member_client, member_user):
    rules = [{"name": "hits", "type": "counter", "pattern": "GET"}]
    body = {"name": "c", "metrics": rules, "enabled": 1}
    assert "enabled" in assert_error(member_client.post("/api/v1/metric-configs", body, format="json"), 400)["details"]
    agent = AgentFactory(organization=member_user.organization)
    body = {"agent_id": str(agent.pk), "filters": {"level": ["error", 3]}}
    r = member_client.post("/api/v1/stream/start", body, format="json")
    assert assert_error(r, 400)["details"] == {"filters.level.1": "must be a string"}


# --- PATCH {} is a no-op ------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/auth/me", "/api/v1/organization"])
def test_patch_with_nothing_changes_nothing(admin_client, admin_user, url):
    events = AuditEvent.objects.count()
    before = admin_client.get(url).json()
    r = admin_client.patch(url, {}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json() == before
    assert AuditEvent.objects.count() == events


# --- query parameters: blank, null, repeated ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "query", "field"),
    [
        ("/api/v1/agents", "status=", "status"),
        ("/api/v1/agents", "search=", "search"),
        ("/api/v1/agents", "label=", "label.0"),
        ("/api/v1/agents", "status=online&status=offline", "status"),
        ("/api/v1/agents", "page=1&page=2", "page"),
        ("/api/v1/agents", "page=%1D1", "page"),
        ("/api/v1/metric-configs", "enabled=", "enabled"),
        ("/api/v1/metric-configs", "enabled=null", "enabled"),
        ("/api/v1/metric-configs", "enabled=1", "enabled"),
        ("/api/v1/metric-configs", "log_source=", "log_source"),
        ("/api/v1/metrics/series", "name=", "name"),
        ("/api/v1/stream/sessions", "status=", "status"),
        ("/api/v1/api-keys", "status=", "status"),
        ("/api/v1/audit-events", "actor=", "actor"),
    ],
)
def test_a_filter_that_is_there_is_valid_or_refused(admin_client, url, query, field):
    details = assert_error(admin_client.get(f"{url}?{query}"), 400, "validation_error")["details"]
    assert field in details, details


def test_boolean_filters_take_true_and_false(member_client):
    for value in ("true", "false"):
        assert member_client.get(f"/api/v1/metric-configs?enabled={value}").status_code == 200
    assert member_client.get("/api/v1/agents?label=site:&label=env:prod").status_code == 200


# --- one credential per request -----------------------------------------------------------------


def test_mixed_credentials_are_refused_whichever_is_good(admin_client, org):
    token = admin_client.tokens.token
    _key, raw = make_key(org, permissions=["edge:register", "metrics:read"])
    cases = [
        ("/api/v1/agents", {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_API_KEY": "lf_prod_nonsense"}),
        ("/api/v1/agents", {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_API_KEY": raw}),
        ("/api/v1/metrics/export", {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_API_KEY": raw}),
        ("/api/v1/metrics/export", {"HTTP_AUTHORIZATION": "Bearer nonsense", "HTTP_X_API_KEY": raw}),
    ]
    for url, headers in cases:
        r = APIClient().get(url, **headers)
        assert "not both" in assert_error(r, 401, "not_authenticated")["message"], (url, headers)
    r = APIClient().post(
        "/api/v1/edge/register", {"name": "e"}, format="json", HTTP_X_API_KEY=raw, HTTP_AUTHORIZATION="x"
    )
    assert_error(r, 401, "not_authenticated")
    assert not Agent.objects.exists()
    # Each alone still works.
    assert APIClient().get("/api/v1/metrics/export", HTTP_X_API_KEY=raw).status_code == 200
    assert APIClient().get("/api/v1/agents", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


# --- the schema says so -------------------------------------------------------------------------


def test_anonymous_operations_declare_no_security(schema):
    for path in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/forgot-password"):
        assert schema["paths"][path]["post"]["security"] == [], path
    assert schema["paths"]["/api/v1/auth/reset-password"]["post"]["security"] == []
    assert schema["paths"]["/api/v1/agents"]["get"]["security"] == [{"bearerAuth": []}]


def test_every_error_response_has_the_envelope_schema(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and path not in ("/api/v1/schema", "/api/v1/docs"):
                    content = response.get("content", {}).get("application/json", {})
                    assert content.get("schema") == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_each_create_links_to_what_it_created(schema):
    links = schema["paths"]["/api/v1/agents"]["post"]["responses"]["201"]["links"]
    assert {"agents_retrieve", "agents_partial_update", "agents_destroy", "agents_config_update"} <= set(links)
    assert links["agents_retrieve"]["parameters"] == {"id": "$response.body#/id"}
    keys = schema["paths"]["/api/v1/api-keys"]["post"]["responses"]["201"]["links"]
    assert keys["api_keys_destroy"]["parameters"] == {"id": "$response.body#/api_key/id"}
    sessions = schema["paths"]["/api/v1/stream/start"]["post"]["responses"]["201"]["links"]
    assert sessions["stream_sessions_retrieve"]["parameters"] == {"id": "$response.body#/session/id"}
    for path in ("/api/v1/metric-configs", "/api/v1/organization/members"):
        assert schema["paths"][path]["post"]["responses"]["201"]["links"], path


def test_the_schema_states_the_rules_of_fields_and_parameters(schema):
    components = schema["components"]["schemas"]
    for name in ("FiltersRequest", "AgentConfigValidatorRequest", "LogSourceRequest", "MetricRuleRequest"):
        assert components[name]["additionalProperties"] is False, name
    labels = components["AgentWriteRequest"]["properties"]["labels"]
    assert labels["additionalProperties"] == {"type": "string", "maxLength": 256}
    assert labels["propertyNames"]["pattern"].startswith("^[a-zA-Z_]")
    assert components["PatchedMetricConfigUpdateRequest"]["required"] == ["version"]
    assert "required" not in components["PatchedProfileUpdateRequest"]

    def parameter(path, name):
        [found] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
        return found["schema"]

    assert parameter("/api/v1/audit-events", "actor")["format"] == "uuid"
    assert parameter("/api/v1/audit-events", "since")["format"] == "date-time"
    assert parameter("/api/v1/stream/sessions", "agent_id")["format"] == "uuid"
    assert parameter("/api/v1/metrics/series", "name")["minLength"] == 1
    assert parameter("/api/v1/agents", "label")["items"]["pattern"].endswith(":")
    assert parameter("/api/v1/metric-configs", "enabled")["type"] == "boolean"


def test_a_notification_channel_create_is_one_of_two_shapes_by_kind(schema):
    components = schema["components"]["schemas"]
    body = schema["paths"]["/api/v1/notification-channels"]["post"]["requestBody"]["content"]["application/json"]
    create = components[body["schema"]["$ref"].rsplit("/", 1)[-1]]
    assert create["discriminator"]["propertyName"] == "kind"
    shapes = {kind: components[ref.rsplit("/", 1)[-1]] for kind, ref in create["discriminator"]["mapping"].items()}
    assert set(shapes) == {"webhook", "email"}
    assert "url" in shapes["webhook"]["required"] and shapes["webhook"]["properties"]["email"]["maxLength"] == 0
    assert shapes["webhook"]["properties"]["url"]["minLength"] == 1
    assert "email" in shapes["email"]["required"] and shapes["email"]["properties"]["url"]["maxLength"] == 0
    assert shapes["email"]["properties"]["email"]["format"] == "email"
