"""API.md section 0 and 9: the envelope on every error, content types, sizes, operations endpoints."""

import json
import re

import pytest
import yaml
from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework.test import APIClient

from logfleet import views as ops_views
from logfleet.testing import assert_error, manage_py

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v1/auth/login/extra", "/api/v2/auth/login"])
def test_unknown_urls_answer_404_in_the_envelope(api_client, path):
    r = api_client.get(path)
    assert r["Content-Type"] == "application/json"
    assert_error(r, 404, "not_found")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unknown_urls_are_404_for_every_method(method):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    r = getattr(client, method)("/api/v1/edge/agents/0.5/heartbeat", "{}", content_type="application/json")
    assert_error(r, 404, "not_found")


def test_unknown_urls_are_json_also_in_debug_mode(api_client, settings):
    settings.DEBUG = True
    assert_error(api_client.get("/api/v1/missing"), 404, "not_found")


def test_wrong_method_is_405(api_client):
    assert_error(api_client.get("/api/v1/auth/login"), 405, "method_not_allowed")


def test_other_content_types_are_415(api_client):
    r = api_client.post("/api/v1/auth/login", "email=a&password=b", content_type="application/x-www-form-urlencoded")
    assert_error(r, 415, "unsupported_media_type")


def test_malformed_json_is_a_parse_error(api_client):
    r = api_client.post("/api/v1/auth/login", '{"email": ', content_type="application/json")
    assert_error(r, 400, "parse_error")


def test_a_json_body_that_is_not_an_object_is_a_validation_error(api_client):
    r = api_client.post("/api/v1/auth/login", "[1, 2]", content_type="application/json")
    assert_error(r, 400, "validation_error")


def asgi_post(path: str, chunks: list[bytes], content_length: int | None) -> tuple[int, dict, int]:
    """POST through the real ASGI application: (status, JSON body, how many chunks it read)."""
    from asgiref.testing import ApplicationCommunicator

    from logfleet.asgi import application

    headers = [(b"host", b"localhost"), (b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": headers}

    async def run():
        communicator = ApplicationCommunicator(application, scope)
        sent = 0
        for index, chunk in enumerate(chunks):
            await communicator.send_input({"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1})
            sent += 1
        start = await communicator.receive_output(5)
        body = await communicator.receive_output(5)
        await communicator.wait(5)
        return start["status"], json.loads(body["body"]), sent

    return async_to_sync(run)()


def test_a_declared_body_over_the_limit_is_413_before_it_is_read():
    # Nothing of the 100 MiB is sent: the answer comes from the header alone.
    from asgiref.testing import ApplicationCommunicator

    from logfleet.asgi import application

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/auth/login",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"content-length", str(100 * 1024 * 1024).encode())],
    }

    async def run():
        communicator = ApplicationCommunicator(application, scope)
        start = await communicator.receive_output(5)
        body = await communicator.receive_output(5)
        return start["status"], json.loads(body["body"])

    status, body = async_to_sync(run)()
    assert status == 413 and body["error"] == "payload_too_large" and body["details"]["max_bytes"] == 1024 * 1024


def test_a_streamed_body_is_cut_off_at_the_limit():
    chunk = b"x" * (256 * 1024)
    status, body, _ = asgi_post("/api/v1/auth/login", [chunk] * 5, None)
    assert status == 413 and body["error"] == "payload_too_large", body


def test_edge_pushes_may_carry_five_mebibytes():
    two_mib = [b"x" * (1024 * 1024)] * 2
    # Under the edge limit: the URL is answered (404, not an agent id), not the size.
    assert asgi_post("/api/v1/edge/agents/x/metrics", two_mib, 2 * 1024 * 1024)[0] == 404
    status, body, _ = asgi_post("/api/v1/edge/agents/x/stream", [b"x"], 5 * 1024 * 1024 + 1)
    assert status == 413 and body["details"]["max_bytes"] == 5 * 1024 * 1024
    assert asgi_post("/api/v1/auth/login", [b"{}"], None)[0] != 413


def test_unexpected_exceptions_are_a_500_envelope_without_a_traceback(api_client, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("accounts.services.user_login", explode)
    r = api_client.post("/api/v1/auth/login", {"email": "a@example.com", "password": "x"}, format="json")
    body = assert_error(r, 500, "internal_error")
    assert "secret internals" not in r.content.decode()
    assert body["details"] == {}


def test_a_database_outage_is_a_503(api_client, monkeypatch):
    from django.db import OperationalError

    def unavailable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("accounts.services.user_login", unavailable)
    r = api_client.post("/api/v1/auth/login", {"email": "a@example.com", "password": "x"}, format="json")
    assert_error(r, 503, "service_unavailable")


def test_html_is_never_the_answer_even_when_asked_for(api_client):
    r = api_client.get("/api/v1/auth/me", HTTP_ACCEPT="text/html")
    assert r["Content-Type"] == "application/json"
    assert_error(r, 401, "not_authenticated")


def test_healthz(api_client):
    r = api_client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_reports_its_checks(api_client):
    r = api_client.get("/readyz")
    assert r.status_code == 200, r.json()
    expected_redis = "ok" if settings.REDIS_URL else "not configured"
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "redis": expected_redis}}


def test_readyz_is_503_when_a_check_fails(api_client, monkeypatch):
    def broken():
        raise ConnectionError("Error connecting to redis-7.internal:6379 as user ops")

    monkeypatch.setattr(ops_views, "_check_redis", broken)
    r = api_client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert r.json()["checks"] == {"database": "ok", "redis": "error: ConnectionError"}  # no hosts, no users


def test_openapi_schema_in_yaml_and_json(api_client):
    r = api_client.get("/api/v1/schema")
    assert r.status_code == 200
    schema = yaml.safe_load(r.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/auth/login" in schema["paths"]
    as_json = api_client.get("/api/v1/schema", {"format": "json"})
    assert as_json.status_code == 200 and as_json["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert as_json.json()["paths"].keys() == schema["paths"].keys()
    members = schema["paths"]["/api/v1/organization/members"]["get"]["responses"]["200"]
    ref = members["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][ref]["required"]) == {"items", "total", "page", "page_size"}


def test_swagger_ui_is_served_from_local_static_files(api_client, settings):
    settings.DEBUG = False
    r = api_client.get("/api/v1/docs")
    assert r.status_code == 200, r.content[:300]
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.content.decode())
    assert assets and all(url.startswith("/static/") for url in assets), assets
    for url in assets:
        assert APIClient().get(url).status_code == 200, url


def test_admin_login_page_is_served(api_client):
    r = api_client.get("/admin/login/")
    assert r.status_code == 200 and b"<form" in r.content


@pytest.mark.parametrize(
    "variable, value",
    [
        ("LOGFLEET_RATE_EDGE", "abc"),
        ("LOGFLEET_RATE_AUTH_ACCOUNT", "10 per minute"),
        ("DATABASE_URL", "mysql://nope"),
        ("DATABASE_URL", "postgres://host:notaport/db"),
        ("AGENT_OFFLINE_AFTER", "soon"),
        ("DEBUG", "maybe"),
        ("PUBLIC_URL", "localhost"),
        ("INVITE_TTL", str(10**12)),  # beyond what date arithmetic holds: refused at start, not a 500 later
        ("AGENT_OFFLINE_AFTER", "0"),
    ],
)
def test_a_bad_setting_stops_the_process_naming_the_variable(variable, value):
    result = manage_py("check", env={variable: value, "SECRET_KEY": "x"})
    assert result.returncode != 0
    assert variable in result.stderr


def test_the_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = yaml.safe_load((tmp_path / "schema.yaml").read_text())
    for path in (
        "/api/v1/agents",
        "/api/v1/api-keys",
        "/api/v1/metric-configs",
        "/api/v1/metrics/query",
        "/api/v1/stream/start",
        "/api/v1/edge/agents/{agent_id}/metrics",
    ):
        assert path in schema["paths"], path


@pytest.mark.parametrize(
    "variable", ["JWT_ACCESS_TTL", "JWT_REFRESH_TTL", "PASSWORD_RESET_TTL", "INVITE_TTL", "AGENT_OFFLINE_AFTER"]
)
def test_every_ttl_and_interval_accepts_one_second(variable):
    result = manage_py("check", env={variable: "1", "SECRET_KEY": "x"})
    assert result.returncode == 0, result.stderr


def _views_with_other_renderers():
    """Every route whose view can answer something other than JSON (schema, docs, export...)."""
    from django.urls import URLPattern, URLResolver, get_resolver
    from rest_framework.renderers import JSONRenderer

    found = []

    def walk(patterns, prefix):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                view = getattr(entry.callback, "cls", None)
                renderers = getattr(view, "renderer_classes", None) or []
                if any(not issubclass(renderer, JSONRenderer) for renderer in renderers):
                    found.append("/" + prefix + str(entry.pattern))

    walk(get_resolver().url_patterns, "")
    return found


def test_routes_with_other_renderers_answer_errors_in_the_envelope(api_client):
    routes = _views_with_other_renderers()
    assert {"/api/v1/schema", "/api/v1/docs"} <= set(routes), routes
    for route in routes:
        for accept in ("*/*", "application/vnd.oai.openapi", "text/html", "text/plain"):
            r = api_client.delete(route, HTTP_ACCEPT=accept)
            assert r["Content-Type"] == "application/json", (route, accept, r["Content-Type"])
            assert_error(r, 405, "method_not_allowed")
    # The Prometheus export answers text itself; its errors are JSON too.
    r = api_client.get("/api/v1/metrics/export", HTTP_ACCEPT="text/plain")
    assert r["Content-Type"] == "application/json" and assert_error(r, 401, "not_authenticated")
    assert_error(api_client.get("/api/v1/schema", {"format": "xml"}), 404)


def test_a_deeply_nested_body_is_a_parse_error_not_a_crash(api_client):
    body = "[" * 100_000 + "]" * 100_000
    r = api_client.post("/api/v1/auth/login", body, content_type="application/json")
    assert_error(r, 400, "parse_error")


def test_a_nul_character_is_refused_in_any_body_or_query_string(admin_client):
    r = admin_client.post("/api/v1/api-keys", {"name": "a\x00b", "permissions": ["edge:heartbeat"]}, format="json")
    assert assert_error(r, 400, "validation_error")["details"] == {"name": "must not contain NUL characters"}
    r = admin_client.post("/api/v1/api-keys", {"name": "k", "permissions": ["edge:heartbeat\x00"]}, format="json")
    assert "permissions.0" in assert_error(r, 400)["details"]
    assert admin_client.get("/api/v1/api-keys").json()["total"] == 0
    for query in ("label=env:prod%00", "name=a%00", "agent_id=%00"):
        assert "query" in assert_error(admin_client.get(f"/api/v1/metrics/series?{query}"), 400)["details"]


def test_a_deployment_without_secret_key_does_not_start():
    result = manage_py("check", env={"PUBLIC_URL": "https://fleet.example.com"})
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_check_deploy_warns_while_email_is_only_printed():
    env = {"SECRET_KEY": "x" * 60, "PUBLIC_URL": "https://fleet.example.com"}
    printed = manage_py("check", "--deploy", env=env)
    assert "logfleet.W002" in printed.stderr + printed.stdout
    delivered = manage_py(
        "check", "--deploy", env={**env, "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend"}
    )
    assert "logfleet.W002" not in delivered.stderr + delivered.stdout


def test_docs_with_a_trailing_slash_lead_to_the_docs(api_client):
    r = api_client.get("/api/v1/docs/")
    assert r.status_code == 301 and r["Location"] == "/api/v1/docs"


def test_swagger_groups_start_with_auth(api_client):
    schema = yaml.safe_load(api_client.get("/api/v1/schema").content)
    assert [tag["name"] for tag in schema["tags"]][:3] == ["auth", "organization", "agents"]


def test_a_token_without_its_scheme_is_told_what_the_header_must_be(admin_client):
    token = admin_client.tokens.token
    r = APIClient().get("/api/v1/auth/me", HTTP_AUTHORIZATION=token)
    assert "Bearer" in assert_error(r, 401, "not_authenticated")["message"]


def test_the_admins_view_site_link_leads_to_a_page(operator_client):
    page = operator_client.get("/admin/").content.decode()
    link = re.search(r'<a href="([^"]+)">View site</a>', page).group(1)
    assert APIClient().get(link).status_code == 200, link


def test_the_orjson_renderer_writes_what_drf_wrote():
    """Responses went from DRF's json.dumps renderer to orjson: the same bytes for what the API
    answers (dates with Z and milliseconds, decimals, UUIDs, U+2028 escaped, huge integers)."""
    import datetime
    import decimal
    import uuid

    from rest_framework.renderers import JSONRenderer

    from logfleet.api.parsers import OrjsonRenderer

    data = {
        "at": datetime.datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=datetime.UTC),
        "day": datetime.date(2024, 1, 15),
        "price": decimal.Decimal("1.5"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "text": "é \u2028 \u2029 \x00",
        "nested": [{"n": 1, "f": 0.1, "none": None, "yes": True}],
        "page": 10**30,
    }
    assert OrjsonRenderer().render(data) == JSONRenderer().render(data)
    del data["page"]  # orjson's own path from here on
    assert OrjsonRenderer().render(data) == JSONRenderer().render(data)
    assert OrjsonRenderer().render({"a": [1]}, "application/json; indent=2") == b'{\n  "a": [\n    1\n  ]\n}'
