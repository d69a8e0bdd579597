"""Validation matches what the database stores, on every write path (security review).

SQLite keeps over-long strings, out-of-range numbers and text PostgreSQL cannot encode, so there a
missing bound passes unnoticed; on PostgreSQL the value passes validation and then the write fails
(a 500, or a batch that fails again on every retry). Through the public API: for every write path
and every bounded field, the value exactly at the bound is accepted and stored as sent, and values
past it (one past, and a huge one for numbers) are a 400 `validation_error` naming the field and
leave the database exactly as it was. Then the same for what a JSON string can hold (lone
surrogates), optimistic-locking versions, metric samples (per-sample errors, sums in SQL), pages
and ids, client addresses, the Django admin's forms, the management commands and derived values
(organization slugs). Every test runs on SQLite and on PostgreSQL (DATABASE_URL); PostgreSQL is
the one that matters.
"""

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django import forms
from django.apps import apps
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent, AuthSession, Organization, PasswordToken, User
from accounts.services import audit_record, registration
from accounts.tests.factories import OperatorFactory, OrganizationFactory, PasswordTokenFactory, UserFactory
from agents.models import (
    Agent,
    AgentAnnouncement,
    KeyAnnouncement,
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
)
from agents.tests.factories import AgentFactory, NotificationChannelFactory, NotificationDeliveryFactory
from apikeys.models import APIKey
from apikeys.tests.factories import make_key
from logfleet.api.parsers import SURROGATE_MESSAGE
from logfleet.asgi import application
from logfleet.errors import MAX_VERSION
from logfleet.testing import assert_error
from metrics.ingest import BIGINT_MAX
from metrics.models import MetricBatch, MetricConfig, Rollup, Sample, Series
from streaming.models import StreamSession
from streaming.tests.factories import StreamSessionFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Sturdy-test-passw0rd"
OUR_APPS = ("accounts", "agents", "apikeys", "metrics", "streaming")
# The largest Unix time a timestamp can hold (the end of year 9999).
MAX_UNIX = 253402300799
EDGE_PERMISSIONS = ["edge:register", "edge:heartbeat", "edge:metrics", "edge:stream"]
RULE = {"name": "hits_total", "type": "counter", "pattern": "GET"}
# A public address as a literal: the SSRF guard checks it without DNS.
PUBLIC_WEBHOOK = "https://93.184.216.34/h"
CHANNEL = {"kind": "webhook", "url": PUBLIC_WEBHOOK, "events": ["agent.offline"]}
HISTOGRAM_RULE = {"name": "took_seconds", "type": "histogram", "pattern": "took=(\\d+)", "value_capture": "$1"}


def text(length: int, char: str = "é") -> str:
    """`length` characters; é by default, two bytes each, so a bound counts characters (as both
    databases do), not bytes."""
    return char * length


def email(length: int, tag: str = "a") -> str:
    """A valid address of exactly `length` (198 or more) characters: a 64-character local part and
    labels of at most 63."""
    local = (tag + "x" * 64)[:64]
    return f"{local}@{'a' * 63}.{'b' * 63}.{'c' * (length - 197)}.com"


def database_rows() -> dict[str, list]:
    """Every row of the project's tables, to show that a refused request wrote nothing at all (but
    the key's `last_used_at`: a use of an API key is recorded whatever the answer)."""
    rows = {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
        if model._meta.app_label in OUR_APPS
    }
    for key in rows["apikeys.APIKey"]:
        key.pop("last_used_at")
    return rows


def names_field(details: dict, field: str) -> bool:
    return any(key == field or key.startswith(f"{field}.") for key in details)


def put(body: dict, path: str, value) -> dict:
    """`body` with `value` at the dotted `path` (list indexes as numbers)."""
    *parents, last = path.split(".")
    target = body
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


class World:
    """What the write paths need: an organization with its people, an online agent, an edge key and
    a metric config."""

    def __init__(self, org, admin_client, member_client):
        self.org = org
        self.admin = admin_client
        self.member = member_client
        self.anon = APIClient()
        self.agent = AgentFactory(organization=org, name="store-01", labels={"env": "prod"}, online=True)
        self.key, raw = make_key(org, permissions=EDGE_PERMISSIONS)
        self.edge = APIClient()
        self.edge.credentials(HTTP_X_API_KEY=raw)
        created = member_client.post("/api/v1/metric-configs", {"name": "base", "metrics": [RULE]}, format="json")
        assert created.status_code == 201, created.json()
        self.config = MetricConfig.objects.get(pk=created.json()["id"])
        self.channel = NotificationChannelFactory(organization=org, url=PUBLIC_WEBHOOK)
        self._count = 0

    def unique(self, prefix: str = "n") -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def unique_email(self) -> str:
        return f"{self.unique('someone')}@example.com"

    def agent_now(self) -> Agent:
        return Agent.objects.get(pk=self.agent.pk)

    def config_now(self) -> MetricConfig:
        return MetricConfig.objects.get(pk=self.config.pk)


@pytest.fixture
def world(org, admin_client, member_client, settings):
    # A test sends a few requests of one group; the limits themselves are tested on their own.
    settings.RATE_LIMITS = {group: "1000/m" for group in settings.RATE_LIMITS}
    return World(org, admin_client, member_client)


@dataclass(frozen=True)
class Bound:
    """One bounded field of one write path (or one query parameter of a read that filters on it)."""

    name: str
    who: str  # the World attribute holding the client
    method: str
    url: str | Callable[[World], str]
    field: str  # dotted path of the value in the body, or the query parameter
    at: object  # the largest (or longest) value accepted
    over: tuple  # values past the bound, each refused
    body: dict | Callable[[World], dict] | None = None  # the rest of the body (or of the query string)
    stored: Callable[[World, object], bool] | None = None  # whether the value is in the database as sent
    ok: int = 200
    details: str | None = None  # the key of `details` that names the field, when it is not `field`

    def __str__(self):
        return self.name

    def prepare(self, world: World, value):
        client = getattr(world, self.who)
        url = self.url(world) if callable(self.url) else self.url
        body = self.body(world) if callable(self.body) else copy.deepcopy(self.body or {})
        if self.method == "get":
            return lambda: client.get(url, {**body, self.field: value})
        body = put(body, self.field, value)
        return lambda: getattr(client, self.method)(url, body, format="json")


def register_body(world):
    return {"organization_name": "Acme", "email": world.unique_email(), "password": PASSWORD, "name": "Ann"}


def agent_url(world):
    return f"/api/v1/agents/{world.agent.pk}"


def config_body(world):
    return {"version": world.agent_now().config_version, "config": {"log_sources": [{"name": "n", "path": "/x"}]}}


def agent_config(world, key):
    return world.agent_now().config[key]


def rule_body(world):
    return {"name": world.unique("config"), "metrics": [dict(RULE)]}


def stored_rule(world, key, value) -> bool:
    return any(rule.get(key) == value for config in MetricConfig.objects.all() for rule in config.metrics)


def stored_buckets(world) -> list[float] | None:
    """The buckets of the stored histogram rule, as floats: PostgreSQL's jsonb keeps numbers as
    decimals and gives 1e300 back as a 301-digit integer (the same number)."""
    for config in MetricConfig.objects.all():
        for rule in config.metrics:
            if rule.get("buckets"):
                return [float(bound) for bound in rule["buckets"]]
    return None


def stored_filter(world, key, value) -> bool:
    return any(session.filters.get(key) == value for session in StreamSession.objects.all())


def heartbeat_url(world):
    return f"/api/v1/edge/agents/{world.agent.pk}/heartbeat"


def report_body(world):
    return {"status": "online", "config_status": {"hash": "h", "state": "failed", "errors": [{"message": "m"}]}}


def reported_errors(world) -> list:
    return world.agent_now().config_errors


def aware(value: str):
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def endpoint(prefix: str, who: str, method: str, url, *, body=None, ok: int = 200):
    """The Bounds of one endpoint: `bound(field, at, over, ...)`, named `<prefix>.<field>` (`?` for a
    query parameter)."""

    def bound(field: str, at, over: tuple, *, note: str = "", **options) -> Bound:
        name = f"{prefix}{'?' if method == 'get' else '.'}{field}{note}"
        return Bound(name, who, method, url, field, at, over, **{"body": body, "ok": ok, **options})

    return bound


def row(model, lookup: str, transform=lambda value: value):
    """Stored as sent: a row of `model` whose `lookup` equals the value."""
    return lambda world, value: model.objects.filter(**{lookup: transform(value)}).exists()


def json_value(model, attribute: str, wrap=lambda value: value):
    """Stored as sent in a JSON column (compared in Python: the same on both databases)."""
    return lambda world, value: any(getattr(item, attribute) == wrap(value) for item in model.objects.all())


def rules_url(world) -> str:
    return f"/api/v1/metric-configs/{world.config.pk}"


def env_label(value) -> dict:
    return {"env": value}


register = endpoint("register", "anon", "post", "/api/v1/auth/register", body=register_body, ok=201)
login = endpoint("login", "anon", "post", "/api/v1/auth/login", body={"password": PASSWORD}, ok=401)  # looked up
forgot = endpoint("forgot-password", "anon", "post", "/api/v1/auth/forgot-password", body={}, ok=202)
me = endpoint("me", "member", "patch", "/api/v1/auth/me", body={})
organization = endpoint("organization", "admin", "patch", "/api/v1/organization", body={})
invite = endpoint("members", "admin", "post", "/api/v1/organization/members", ok=201)
audit = endpoint("audit-events", "admin", "get", "/api/v1/audit-events")
agent_create = endpoint(
    "agents.create", "member", "post", "/api/v1/agents", body=lambda w: {"name": w.unique()}, ok=201
)
agent_update = endpoint("agents.update", "member", "patch", agent_url, body={})
agent_config_put = endpoint("agents", "member", "put", lambda w: f"{agent_url(w)}/config", body=config_body)
agents = endpoint("agents", "member", "get", "/api/v1/agents")
key_create = endpoint("api-keys.create", "admin", "post", "/api/v1/api-keys", ok=201)
key_rotate = endpoint("api-keys.rotate", "admin", "post", lambda w: f"/api/v1/api-keys/{w.key.pk}/rotate", ok=201)
keys = endpoint("api-keys", "admin", "get", "/api/v1/api-keys")
rules_create = endpoint("metric-configs.create", "member", "post", "/api/v1/metric-configs", body=rule_body, ok=201)
rules_patch = endpoint("metric-configs.update", "member", "patch", rules_url)
rules_put = endpoint("metric-configs.replace", "member", "put", rules_url)
rules = endpoint("metric-configs", "member", "get", "/api/v1/metric-configs")
rules_test = endpoint("metric-configs.test", "member", "post", "/api/v1/metric-configs/test")
series = endpoint("metrics/series", "member", "get", "/api/v1/metrics/series")
query = endpoint("metrics/query", "member", "get", "/api/v1/metrics/query", body={"name": "m"})
stream_start = endpoint(
    "stream.start", "member", "post", "/api/v1/stream/start", body=lambda w: {"agent_id": str(w.agent.pk)}, ok=201
)
sessions = endpoint("stream/sessions", "member", "get", "/api/v1/stream/sessions")
edge_register = endpoint(
    "edge.register", "edge", "post", "/api/v1/edge/register", body=lambda w: {"name": w.unique()}, ok=201
)
heartbeat = endpoint("edge.heartbeat", "edge", "post", heartbeat_url, body={"status": "online"})
report = endpoint("edge.heartbeat", "edge", "post", heartbeat_url, body=report_body)
compat_heartbeat = endpoint(
    "edge.heartbeat (compat)", "edge", "post", "/api/v1/edge/heartbeat", body={"status": "online"}
)
metrics_push = endpoint("edge.metrics", "edge", "post", lambda w: f"/api/v1/edge/agents/{w.agent.pk}/metrics", ok=202)
compat_sync = endpoint("edge.sync-config (compat)", "edge", "get", "/api/v1/edge/sync-config")
channels_create = endpoint(
    "notification-channels.create",
    "admin",
    "post",
    "/api/v1/notification-channels",
    body=lambda w: {"name": w.unique("ch"), **CHANNEL},
    ok=201,
)
email_channel_create = endpoint(
    "notification-channels.create",
    "admin",
    "post",
    "/api/v1/notification-channels",
    body=lambda w: {"name": w.unique("ch"), "kind": "email", "events": ["agent.offline"]},
    ok=201,
)
channels_update = endpoint(
    "notification-channels.update", "admin", "patch", lambda w: f"/api/v1/notification-channels/{w.channel.pk}"
)
sources = [{"name": f"s{i}", "path": f"/s{i}", "format": "text"} for i in range(51)]

BOUNDS = [
    # --- accounts ---------------------------------------------------------------------------
    register("organization_name", text(150), (text(151),), stored=row(Organization, "name")),
    register("name", text(150), (text(151),), stored=row(User, "name")),
    register(
        "email", email(254, "Reg"), (email(255, "Reg"),), stored=row(User, "email", str.lower), note=" (lower-cased)"
    ),
    login("email", email(254), (email(255),)),
    forgot("email", email(254), (email(255),)),
    me("name", text(150), (text(151),), stored=lambda w, v: User.objects.filter(pk=w.member.user.pk, name=v).exists()),
    organization(
        "name", text(150), (text(151),), stored=lambda w, v: Organization.objects.filter(pk=w.org.pk, name=v).exists()
    ),
    invite(
        "email",
        email(254, "Inv"),
        (email(255, "Inv"),),
        body={"name": "Bo", "role": "viewer"},
        stored=row(User, "email", str.lower),
    ),
    invite(
        "name",
        text(150),
        (text(151),),
        body=lambda w: {"email": w.unique_email(), "role": "viewer"},
        stored=row(User, "name"),
    ),
    audit("action", "a" * 64, ("a" * 65,)),
    audit(
        "since",
        "9999-12-31T23:59:59Z",
        ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "10000-01-01T00:00:00Z"),
    ),
    audit("actor", str(uuid.uuid4()), ("1" * 100, "not-a-uuid")),
    # --- agents -----------------------------------------------------------------------------
    agent_create("name", text(128), (text(129),), body={}, stored=row(Agent, "name")),
    agent_create("description", text(1024), (text(1025),), stored=row(Agent, "description")),
    agent_create(
        "labels.env", text(256), (text(257),), stored=json_value(Agent, "labels", env_label), details="labels"
    ),
    agent_create("labels", {"k" * 63: "v"}, ({"k" * 64: "v"},), stored=json_value(Agent, "labels"), note=" (key)"),
    agent_create(
        "labels",
        {f"k{i}": "v" for i in range(32)},
        ({f"k{i}": "v" for i in range(33)},),
        stored=json_value(Agent, "labels"),
        note=" (count)",
    ),
    agent_update("name", text(128), (text(129),), stored=lambda w, v: w.agent_now().name == v),
    agent_update("description", text(1024), (text(1025),), stored=lambda w, v: w.agent_now().description == v),
    agent_update(
        "labels.env",
        text(256),
        (text(257),),
        stored=lambda w, v: w.agent_now().labels == env_label(v),
        details="labels",
    ),
    agent_config_put(
        "config.log_sources.0.path",
        "/" + "p" * 4095,
        ("/" + "p" * 4096,),
        stored=lambda w, v: agent_config(w, "log_sources")[0]["path"] == v,
    ),
    agent_config_put(
        "config.log_sources.0.name",
        "n" * 64,
        ("n" * 65,),
        stored=lambda w, v: agent_config(w, "log_sources")[0]["name"] == v,
    ),
    agent_config_put(
        "config.log_sources",
        sources[:50],
        (sources,),
        stored=lambda w, v: agent_config(w, "log_sources") == v,
        note=" (count)",
    ),
    *(
        agent_config_put(
            f"config.{key}",
            top,
            (top + 1, low - 1, 10**20, -(10**20)),
            stored=lambda w, v, key=key: agent_config(w, key) == v,
        )
        for key, low, top in (
            ("heartbeat_interval_seconds", 5, 300),
            ("metrics_interval_seconds", 10, 3600),
            ("retention_hours", 1, 8760),
        )
    ),
    agents("search", text(128), (text(129),)),
    agents("label", "env:" + "v" * 396, ("env:" + "v" * 397, "k" * 64 + ":v")),
    agents("label", [f"k{i}:v" for i in range(32)], ([f"k{i}:v" for i in range(33)],), note=" (count)"),
    agents("ordering", "-last_heartbeat_at", ("x" * 1000,)),
    agents("status", "error", ("x" * 1000,)),
    # --- API keys ---------------------------------------------------------------------------
    key_create("name", text(128), (text(129),), body={"permissions": ["edge:heartbeat"]}, stored=row(APIKey, "name")),
    key_create(
        "expires_at",
        "9999-12-31T23:59:59Z",
        ("9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z", "9" * 40),
        body={"name": "k", "permissions": ["edge:heartbeat"]},
        stored=lambda w, v: aware(v) is not None and APIKey.objects.filter(expires_at=aware(v)).exists(),
    ),
    key_create(
        "permissions",
        ["edge:heartbeat"] * 10,
        (["edge:heartbeat"] * 11,),
        body={"name": "k"},
        stored=lambda w, v: any(key.permissions == ["edge:heartbeat"] for key in APIKey.objects.all()),
        note=" (count)",
    ),
    key_rotate(
        "grace_seconds",
        604800,
        (604801, -1, 10**20),
        body={},
        stored=lambda w, v: APIKey.objects.filter(replaces=w.key).exists(),
    ),
    keys("status", "revoked", ("x" * 1000,)),
    # --- metric configs ---------------------------------------------------------------------
    rules_create("name", text(128), (text(129),), stored=row(MetricConfig, "name")),
    rules_create("description", text(1024), (text(1025),), stored=row(MetricConfig, "description")),
    rules_create("log_source", "l" * 64, ("l" * 65,), stored=row(MetricConfig, "log_source")),
    rules_create(
        "agent_selector.env",
        text(256),
        (text(257),),
        stored=json_value(MetricConfig, "agent_selector", env_label),
        details="agent_selector",
    ),
    rules_create("metrics.0.name", "m" * 200, ("m" * 201,), stored=lambda w, v: stored_rule(w, "name", v)),
    rules_create(
        "metrics.0.description", text(1024), (text(1025),), stored=lambda w, v: stored_rule(w, "description", v)
    ),
    rules_create(
        "metrics.0.pattern",
        "[" + "a" * 4094 + "]",  # 4096 characters that compile to one RE2 instruction
        ("[" + "a" * 4095 + "]",),
        stored=lambda w, v: stored_rule(w, "pattern", v),
    ),
    rules_create(
        "metrics.0.labels.kind", text(256), (text(257),), stored=lambda w, v: stored_rule(w, "labels", {"kind": v})
    ),
    rules_create(
        "metrics.0",
        {**HISTOGRAM_RULE, "buckets": [0.1, 10**300]},
        ({**HISTOGRAM_RULE, "buckets": [0.1, 10**400]},),  # an integer no float holds (it raised OverflowError)
        stored=lambda w, v: stored_buckets(w) == [0.1, 1e300],
        details="metrics.0.buckets",
        note=".buckets",
    ),
    rules_create(
        "metrics",
        [{**RULE, "name": f"r{i}"} for i in range(50)],
        ([{**RULE, "name": f"r{i}"} for i in range(51)],),
        stored=lambda w, v: any(len(config.metrics) == 50 for config in MetricConfig.objects.all()),
        note=" (count)",
    ),
    rules_patch(
        "name",
        text(128),
        (text(129),),
        body=lambda w: {"version": w.config_now().version},
        stored=lambda w, v: w.config_now().name == v,
    ),
    rules_put(
        "agent_selector.env",
        text(256),
        (text(257),),
        body=lambda w: {"version": w.config_now().version, "name": "base", "metrics": [RULE]},
        stored=lambda w, v: w.config_now().agent_selector == env_label(v),
        details="agent_selector",
    ),
    rules("log_source", "l" * 64, ("l" * 65,)),
    rules_test("lines.0", "x" * 65536, ("x" * 65537,), body={"metrics": [RULE], "lines": [""]}),
    rules_test("lines", ["GET"] * 1000, (["GET"] * 1001,), body={"metrics": [RULE]}, note=" (count)"),
    # --- metric reads -----------------------------------------------------------------------
    series("name", "n" * 200, ("n" * 201,)),
    series("agent_id", str(uuid.uuid4()), ("1" * 100, "x")),
    series("label", "env:" + "v" * 396, ("env:" + "v" * 397,)),
    query("name", "n" * 200, ("n" * 201,)),
    query("step", 86400, (86401, 9, 10**20, -(10**20))),
    query(
        "end",
        MAX_UNIX,
        (MAX_UNIX + 1, 10**20, "10000-01-01T00:00:00+00:00", "9999-12-31T23:59:59-01:00"),
        body={"name": "m", "start": MAX_UNIX - 3600},
    ),
    query(
        "start",
        0,
        (-1, -(10**20), "1969-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00"),
        body={"name": "m", "end": 3600},
    ),
    query("group_by", "g" * 400, ("g" * 401,)),
    # --- streaming --------------------------------------------------------------------------
    stream_start(
        "timeout_seconds",
        3600,
        (3601, 0, 10**20),
        stored=lambda w, v: StreamSession.objects.filter(timeout_seconds=v).exists(),
    ),
    stream_start(
        "filters.level", [text(32)], ([text(33)], ["error"] * 17), stored=lambda w, v: stored_filter(w, "level", v)
    ),
    stream_start("filters.source", text(64), (text(65),), stored=lambda w, v: stored_filter(w, "source", v)),
    stream_start("filters.pattern", text(1024), (text(1025),), stored=lambda w, v: stored_filter(w, "pattern", v)),
    stream_start("filter_query", text(4096), (text(4097),), stored=row(StreamSession, "filter_query")),
    sessions("agent_id", str(uuid.uuid4()), ("1" * 100, "x")),
    sessions("status", "expired", ("x" * 1000,)),
    # --- edge -------------------------------------------------------------------------------
    *(
        edge_register(field, text(top), (text(top + 1),), stored=row(Agent, field))
        for field, top in (("name", 128), ("hostname", 255), ("os", 128), ("version", 64))
    ),
    edge_register(
        "labels.env", text(256), (text(257),), stored=json_value(Agent, "labels", env_label), details="labels"
    ),
    heartbeat("version", text(64), (text(65),), stored=lambda w, v: w.agent_now().version == v),
    heartbeat(
        "metrics",
        {"blob": "x" * (16 * 1024 - 12)},  # 16 KiB of JSON
        ({"blob": "x" * (16 * 1024 - 11)},),
        stored=lambda w, v: w.agent_now().system_metrics == v,
        note=" (size)",
    ),
    report("config_status.hash", "h" * 64, ("h" * 65,), stored=lambda w, v: w.agent_now().config_report_hash == v),
    *(
        report(
            f"config_status.errors.0.{key}",
            text(top),
            (text(top + 1),),
            stored=lambda w, v, key=key: reported_errors(w)[0].get(key) == v,
        )
        for key, top in (("message", 1024), ("config_id", 64), ("metric", 128))
    ),
    report(
        "config_status.errors",
        [{"message": "m"}] * 100,
        ([{"message": "m"}] * 101,),
        stored=lambda w, v: len(reported_errors(w)) == 100,
        note=" (count)",
    ),
    compat_heartbeat("agent_id", None, ("1" * 100, "x", 10**20)),  # None: the agent's id (see test_bounds)
    metrics_push("batch_id", "b" * 128, ("b" * 129, ""), body={"samples": []}, stored=row(MetricBatch, "batch_id")),
    metrics_push("samples", [{}] * 10_000, ([{}] * 10_001,), note=" (count)"),  # each {} a per-sample error
    compat_sync("agent_id", None, ("1" * 100, "x")),
    # --- notifications ------------------------------------------------------------------------
    channels_create("name", text(128), (text(129),), stored=row(NotificationChannel, "name")),
    channels_create(
        "url",
        PUBLIC_WEBHOOK + "/" + "x" * (2048 - len(PUBLIC_WEBHOOK) - 1),
        (PUBLIC_WEBHOOK + "/" + "x" * (2048 - len(PUBLIC_WEBHOOK)),),
        stored=row(NotificationChannel, "url"),
    ),
    email_channel_create("email", email(254), (email(255),), stored=row(NotificationChannel, "email")),
    channels_create(
        "agent_selector.env",
        text(256),
        (text(257),),
        stored=json_value(NotificationChannel, "agent_selector", env_label),
        details="agent_selector",
    ),
    channels_create("events", ["agent.offline"] * 10, (["agent.offline"] * 11,)),
    channels_update(
        "name",
        text(128),
        (text(129), ""),
        stored=lambda w, v: NotificationChannel.objects.filter(pk=w.channel.pk, name=v).exists(),
    ),
]


@pytest.mark.parametrize("case", BOUNDS, ids=str)
def test_bounds(world, case):
    """At the bound: accepted and stored as sent. Past it: a 400 naming the field, nothing written."""
    at = str(world.agent.pk) if case.at is None else case.at
    response = case.prepare(world, at)()
    assert response.status_code == case.ok, response.json()
    if case.stored is not None:
        assert case.stored(world, at), f"{case.field} was not stored as sent"
    for value in case.over:
        send = case.prepare(world, value)
        before = database_rows()
        body = assert_error(send(), 400, "validation_error")
        assert names_field(body["details"], case.details or case.field), (str(value)[:80], body)
        assert database_rows() == before, f"a refused {case.field} changed the database"


# --- text the databases cannot store -----------------------------------------------------------
# A JSON escape of half a UTF-16 surrogate pair decodes to a string with no UTF-8 encoding:
# PostgreSQL refuses it in text and jsonb ("invalid input syntax for type json", a 500 when it sat
# in labels, selectors, heartbeat metrics or configs), SQLite when the row is written.

LONE = "\ud800"


def session_url(world) -> str:
    return f"/api/v1/edge/agents/{world.agent.pk}/stream"


def open_session(world) -> StreamSession:
    return StreamSessionFactory(agent=world.agent, timeout_seconds=300)


def sample(**fields) -> dict:
    return {"name": "m", "type": "gauge", "timestamp": timezone.now().isoformat(), "value": 1, **fields}


@dataclass(frozen=True)
class Unstorable:
    name: str
    who: str
    method: str
    url: str | Callable[[World], str]
    body: Callable[[World], dict]
    field: str  # the key of `details`

    def __str__(self):
        return self.name


SURROGATES = [
    Unstorable(
        "register.organization_name",
        "anon",
        "post",
        "/api/v1/auth/register",
        lambda w: {**register_body(w), "organization_name": LONE},
        "organization_name",
    ),
    Unstorable(
        "agents.create.labels (value)",
        "member",
        "post",
        "/api/v1/agents",
        lambda w: {"name": "a", "labels": {"env": LONE}},
        "labels.env",
    ),
    Unstorable(
        "agents.create.labels (key)",
        "member",
        "post",
        "/api/v1/agents",
        lambda w: {"name": "a", "labels": {f"e{LONE}": "v"}},
        "labels",
    ),
    Unstorable(
        "agents.update.description (low half)",
        "member",
        "patch",
        agent_url,
        lambda w: {"description": "low \udfff"},
        "description",
    ),
    Unstorable(
        "agents.config.path",
        "member",
        "put",
        lambda w: f"{agent_url(w)}/config",
        lambda w: {**config_body(w), "config": {"log_sources": [{"name": "n", "path": f"/x{LONE}"}]}},
        "config.log_sources.0.path",
    ),
    Unstorable(
        "metric-configs.agent_selector",
        "member",
        "post",
        "/api/v1/metric-configs",
        lambda w: {**rule_body(w), "agent_selector": {"env": LONE}},
        "agent_selector.env",
    ),
    Unstorable(
        "metric-configs.metrics.labels",
        "member",
        "post",
        "/api/v1/metric-configs",
        lambda w: {**rule_body(w), "metrics": [{**RULE, "labels": {"kind": LONE}}]},
        "metrics.0.labels.kind",
    ),
    Unstorable(
        "stream.start.filters",
        "member",
        "post",
        "/api/v1/stream/start",
        lambda w: {"agent_id": str(w.agent.pk), "filters": {"level": [LONE]}},
        "filters.level.0",
    ),
    Unstorable(
        "edge.register.labels",
        "edge",
        "post",
        "/api/v1/edge/register",
        lambda w: {"name": "e", "labels": {"env": LONE}},
        "labels.env",
    ),
    Unstorable(
        "edge.heartbeat.metrics (value)",
        "edge",
        "post",
        heartbeat_url,
        lambda w: {"status": "online", "metrics": {"cpu": LONE}},
        "metrics.cpu",
    ),
    Unstorable(
        "edge.heartbeat.metrics (key)",
        "edge",
        "post",
        heartbeat_url,
        lambda w: {"status": "online", "metrics": {f"c{LONE}": 1}},
        "metrics",
    ),
    Unstorable(
        "edge.heartbeat.config_status",
        "edge",
        "post",
        heartbeat_url,
        lambda w: put(report_body(w), "config_status.errors.0.message", LONE),
        "config_status.errors.0.message",
    ),
    Unstorable(
        "edge.metrics.labels",
        "edge",
        "post",
        lambda w: f"/api/v1/edge/agents/{w.agent.pk}/metrics",
        lambda w: {"samples": [sample(labels={"env": LONE})]},
        "samples.0.labels.env",
    ),
    Unstorable(
        "edge.stream.logs",
        "edge",
        "post",
        session_url,
        lambda w: {"session_id": str(open_session(w).pk), "logs": [{"message": f"line {LONE}"}]},
        "logs.0.message",
    ),
]


def send_json(client, method: str, url: str, body: dict):
    """The body as JSON text exactly as json.dumps escapes it (the test client's renderer would
    refuse to encode a lone surrogate before sending)."""
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("case", SURROGATES, ids=str)
def test_lone_surrogates_are_refused_naming_the_field(world, case):
    url = case.url(world) if callable(case.url) else case.url
    body = case.body(world)
    before = database_rows()
    answer = assert_error(send_json(getattr(world, case.who), case.method, url, body), 400, "validation_error")
    assert answer["details"] == {case.field: SURROGATE_MESSAGE}, answer
    assert database_rows() == before


def test_escaped_surrogate_pairs_are_characters_and_stored(world):
    """`"\\ud83d\\ude00"` is one character (😀), not two halves: accepted everywhere."""
    r = send_json(world.member, "post", "/api/v1/agents", {"name": "a", "labels": {"env": "😀"}})
    assert r.status_code == 201, r.json()
    assert Agent.objects.get(pk=r.json()["id"]).labels == {"env": "😀"}
    r = send_json(world.edge, "post", heartbeat_url(world), {"status": "online", "metrics": {"mood": "😀"}})
    assert r.status_code == 200, r.json()
    assert world.agent_now().system_metrics == {"mood": "😀"}


def agent_socket(world, raw_key: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, f"/api/v1/edge/agents/{world.agent.pk}/ws", headers=[(b"x-api-key", raw_key.encode())]
    )


@pytest.mark.django_db(transaction=True)
def test_agent_socket_frames_are_checked_like_bodies(world):
    """Over the agent's WebSocket: a lone surrogate, or a session id that is not a UUID, is a 400
    error frame (not a 500 one, nor a line the Redis channel layer cannot encode); the socket stays."""
    session = open_session(world)
    _key, raw = make_key(world.org, permissions=["edge:stream"])

    async def frames():
        socket = agent_socket(world, raw)
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from(timeout=3))["type"] == "stream.start"
        logs = {"type": "logs", "session_id": str(session.pk), "logs": [{"message": f"a {LONE}"}]}
        await socket.send_to(text_data=json.dumps(logs))
        error = await socket.receive_json_from(timeout=3)
        assert (error["type"], error["status"]) == ("error", 400), error
        assert "logs.0.message" in error["message"], error
        for session_id in ("x", "1" * 100, 10**20, {"id": 1}):
            await socket.send_json_to({"type": "logs", "session_id": session_id, "logs": []})
            error = await socket.receive_json_from(timeout=3)
            assert (error["type"], error["status"], error["error"]) == ("error", 400, "validation_error")
            assert error["details"] == {"session_id": "must be a UUID"}, error
        await socket.send_json_to({"type": "logs", "session_id": str(session.pk), "logs": [{"message": "fine"}]})
        assert (await socket.receive_json_from(timeout=3))["type"] == "logs.ack"
        await socket.disconnect()

    async_to_sync(frames)()
    assert StreamSession.objects.get(pk=session.pk).lines_sent == 1


# --- versions (optimistic locking) -------------------------------------------------------------
# A version is a PositiveIntegerField: PostgreSQL's integer. A change at the last version it holds
# wrote version + 1, which PostgreSQL refused with a 500 (SQLite stored it).

VERSIONED = {
    "agents.config": (
        "put",
        lambda w: f"{agent_url(w)}/config",
        lambda w, version: {"version": version, "config": {"retention_hours": 24}},
        lambda w: Agent.objects.filter(pk=w.agent.pk),
        "config_version",
    ),
    "metric-configs (PATCH)": (
        "patch",
        lambda w: f"/api/v1/metric-configs/{w.config.pk}",
        lambda w, version: {"version": version, "description": "changed"},
        lambda w: MetricConfig.objects.filter(pk=w.config.pk),
        "version",
    ),
    "metric-configs (PUT)": (
        "put",
        lambda w: f"/api/v1/metric-configs/{w.config.pk}",
        lambda w, version: {"version": version, "name": "base", "metrics": [RULE]},
        lambda w: MetricConfig.objects.filter(pk=w.config.pk),
        "version",
    ),
}


@pytest.mark.parametrize("name", VERSIONED)
def test_a_version_the_column_cannot_hold_is_refused_naming_it(world, name):
    method, url, body, _rows, _column = VERSIONED[name]
    client = world.member
    for version in (MAX_VERSION + 1, 10**20, 0, -1, -(10**20)):
        before = database_rows()
        answer = assert_error(getattr(client, method)(url(world), body(world, version), format="json"), 400)
        assert names_field(answer["details"], "version"), answer
        assert database_rows() == before


@pytest.mark.parametrize("name", VERSIONED)
def test_the_last_version_the_column_holds_is_reached_then_a_conflict(world, name):
    method, url, body, rows, column = VERSIONED[name]
    client = world.member
    rows(world).update(**{column: MAX_VERSION - 1})
    r = getattr(client, method)(url(world), body(world, MAX_VERSION - 1), format="json")
    assert r.status_code == 200, r.json()
    assert getattr(rows(world).get(), column) == MAX_VERSION
    before = database_rows()
    answer = assert_error(getattr(client, method)(url(world), body(world, MAX_VERSION), format="json"), 409, "conflict")
    assert answer["details"] == {"version": f"at its maximum ({MAX_VERSION})"}, answer
    assert database_rows() == before


# --- metric samples ----------------------------------------------------------------------------
# Bounds of one sample are per-sample errors (API.md section 6), so a batch is answered 202 with
# the refused samples listed. PostgreSQL refuses a float8 sum that overflows and a bigint past
# 2**63 - 1 (SQLite makes them infinity and a float): series totals and per-minute rollups are sums
# in SQL, so a value near the largest double, pushed twice, failed every later batch of the agent.


def push(world, samples: list, **body):
    return world.edge.post(f"/api/v1/edge/agents/{world.agent.pk}/metrics", {"samples": samples, **body}, format="json")


def histogram(count: int, total: float = 1.0, **fields) -> dict:
    return sample(type="histogram", histogram={"count": count, "sum": total, "buckets": {"+Inf": count}}, **fields)


SAMPLE_BOUNDS = {
    "name": (sample(name="m" * 200), sample(name="m" * 201), "name"),
    "label value": (sample(labels={"env": text(256)}), sample(labels={"env": text(257)}), "at most 256"),
    "labels (count)": (
        sample(labels={f"k{i}": "v" for i in range(32)}),
        sample(labels={f"k{i}": "v" for i in range(33)}),
        "at most 32",
    ),
    "value": (sample(value=1e200), sample(value=1.0000001e200), "1e200"),
    "value (negative)": (sample(value=-1e200), sample(value=-1.7e308), "1e200"),
    "value (near the largest double)": (
        sample(type="counter", value=1e200),
        sample(type="counter", value=1.7e308),
        "1e200",
    ),
    "histogram.count": (histogram(10**12), histogram(10**12 + 1), "10**12"),
    "histogram.sum": (histogram(1, total=1e200), histogram(1, total=1e201), "1e200"),
}


@pytest.mark.parametrize("name", SAMPLE_BOUNDS)
def test_sample_bounds_are_per_sample_errors(world, name):
    at, over, said = SAMPLE_BOUNDS[name]
    r = push(world, [at])
    assert r.status_code == 202, r.json()
    assert r.json()["accepted"] == 1, r.json()
    before = database_rows()
    r = push(world, [over])
    assert r.status_code == 202, r.json()
    assert (r.json()["accepted"], r.json()["rejected"]) == (0, 1), r.json()
    assert r.json()["errors"][0]["index"] == 0 and said in r.json()["errors"][0]["message"], r.json()
    assert database_rows() == before


def test_running_totals_of_values_at_the_bound_are_stored(world):
    """Two counter increments and two gauge values of 1e200 in one minute: the series total and the
    rollup's sum are 2e200, stored by PostgreSQL as by SQLite."""
    at = timezone.now().replace(second=0, microsecond=0)
    for _ in range(2):
        samples = [
            sample(name="c", type="counter", value=1e200, timestamp=at.isoformat()),
            sample(name="g", value=1e200, timestamp=at.isoformat()),
        ]
        r = push(world, samples)
        assert r.json()["accepted"] == 2, r.json()
    assert Series.objects.get(name="c").total == 2e200
    assert Rollup.objects.get(name="g").sum == 2e200


def test_a_histograms_running_count_stops_at_what_a_bigint_holds(world):
    assert push(world, [histogram(5)]).json()["accepted"] == 1
    Series.objects.filter(name="m").update(histogram_count=BIGINT_MAX - 10)
    r = push(world, [histogram(4), histogram(6)])
    assert r.json()["accepted"] == 2, r.json()
    assert Series.objects.get(name="m").histogram_count == BIGINT_MAX
    before = database_rows()
    r = push(world, [histogram(1)], batch_id="b1")
    assert (r.json()["accepted"], r.json()["rejected"]) == (0, 1), r.json()
    assert "running count" in r.json()["errors"][0]["message"], r.json()
    after = database_rows()
    assert [batch["batch_id"] for batch in after.pop("metrics.MetricBatch")] == ["b1"]  # remembered, with 0
    before.pop("metrics.MetricBatch")
    assert after == before


# --- the Django admin --------------------------------------------------------------------------
# Every add and change form of every model: a value past a bounded field's limit re-renders the form
# with the error beside the field (200) and writes nothing; values at the limits are saved as typed.


@pytest.fixture
def operator(db):
    user = OperatorFactory()
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def split_time(name: str, value: datetime | None) -> dict:
    moment = timezone.localtime(value) if value else None
    return {
        f"{name}_0": moment.date().isoformat() if moment else "",
        f"{name}_1": moment.time().isoformat() if moment else "",
    }


def admin_objects(world) -> dict:
    """One object of each model, for its change form."""
    assert push(world, [sample(name="gauge")], batch_id="batch-1").status_code == 202
    token = PasswordTokenFactory(user=world.member.user)
    event = audit_record(organization=world.org, action="test.event", actor=world.member.user)
    delivery = NotificationDeliveryFactory(channel=world.channel)
    return {
        Organization: world.org,
        User: world.member.user,
        AuthSession: AuthSession.objects.filter(user=world.member.user).first(),
        PasswordToken: token,
        AuditEvent: event,
        APIKey: world.key,
        Agent: world.agent,
        MetricConfig: world.config,
        Series: Series.objects.get(name="gauge"),
        MetricBatch: MetricBatch.objects.get(batch_id="batch-1"),
        Sample: Sample.objects.first(),
        Rollup: Rollup.objects.first(),
        StreamSession: StreamSessionFactory(agent=world.agent, timeout_seconds=60),
        NotificationChannel: world.channel,
        NotificationEvent: delivery.event,
        NotificationDelivery: delivery,
        NotificationAttempt: NotificationAttempt.objects.create(delivery=delivery, number=1, error="refused"),
        AgentAnnouncement: AgentAnnouncement.objects.create(agent=world.agent, status="online"),
        KeyAnnouncement: KeyAnnouncement.objects.create(api_key=world.key),
    }


# Valid POST data of each admin form that can be submitted (obj is None for the add form).
ADMIN_DATA = {
    Organization: lambda w, obj: {"name": obj.name if obj else "Acme", "slug": obj.slug if obj else "acme"},
    User: lambda w, obj: (
        {
            "email": obj.email,
            "name": obj.name,
            "organization": obj.organization_id,
            "role": obj.role,
            "status": obj.status,
        }
        if obj
        else {
            "email": "new@example.com",
            "name": "New",
            "organization": w.org.pk,
            "role": "member",
            "password1": PASSWORD,
            "password2": PASSWORD,
        }
    ),
    AuthSession: lambda w, obj: {**split_time("ended_at", obj.ended_at), "end_reason": obj.end_reason},
    APIKey: lambda w, obj: (
        {"name": obj.name}
        if obj
        else {
            "organization": w.org.pk,
            "name": "k",
            "permissions": ["edge:heartbeat"],
            **split_time("expires_at", None),
        }
    ),
    Agent: lambda w, obj: {
        "organization": w.org.pk,
        "name": obj.name if obj else "new-agent",
        "description": obj.description if obj else "",
    },
    MetricConfig: lambda w, obj: {
        "organization": w.org.pk,
        "name": "new-config",
        "description": "",
        "log_source": "*",
        "enabled": "on",
        "agent_selector": "{}",
        "metrics": json.dumps([RULE]),
    },
}


def admin_url(model, obj) -> str:
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}"
    return f"{base}/{obj.pk}/change/" if obj is not None else f"{base}/add/"


def bounded_fields(form_class) -> dict:
    return {name: field for name, field in form_class.base_fields.items() if getattr(field, "max_length", None)}


def value_of_length(field, length: int, tag: str) -> str:
    if isinstance(field, forms.EmailField):
        return email(length, tag)
    if isinstance(field, (forms.SlugField, forms.RegexField)):  # a log source: [a-z0-9_-]
        return (tag + "s" * length)[:length]
    return (tag + text(length))[:length]


def admin_forms(world, operator):
    """(model, model admin, object or None, form class) of every form the operator may submit."""
    objects = admin_objects(world)
    request = RequestFactory().get("/admin/")
    request.user = operator.user
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in OUR_APPS:
            continue
        for obj in (None, objects[model]):
            allowed = (
                model_admin.has_add_permission(request)
                if obj is None
                else model_admin.has_change_permission(request, obj)
            )
            if allowed:
                yield model, model_admin, obj, model_admin.get_form(request, obj, change=obj is not None)


def test_admin_forms_refuse_values_past_their_bounds_and_save_values_at_them(world, operator):
    checked = []
    for model, _model_admin, obj, form_class in admin_forms(world, operator):
        bounded = bounded_fields(form_class)
        if not bounded:
            continue
        assert model in ADMIN_DATA, f"add the valid data of {model.__name__}'s admin form to ADMIN_DATA"
        data = ADMIN_DATA[model](world, obj)
        for name, field in bounded.items():
            before = database_rows()
            r = operator.post(admin_url(model, obj), {**data, name: value_of_length(field, field.max_length + 1, "o")})
            assert r.status_code == 200, (model.__name__, name, r.status_code)
            assert name in r.context["adminform"].form.errors, (model.__name__, name)
            assert database_rows() == before, (model.__name__, name)
            checked.append(f"{model.__name__}.{name}{'' if obj else ' (add)'}")
        tag = "add" if obj is None else "chg"
        at_bounds = {name: value_of_length(field, field.max_length, tag) for name, field in bounded.items()}
        r = operator.post(admin_url(model, obj), {**data, **at_bounds})
        assert r.status_code == 302, (model.__name__, r.context["adminform"].form.errors if r.context else r.content)
        saved = model.objects.filter(
            **{name: value.lower() if name == "email" else value for name, value in at_bounds.items()}
        )
        assert saved.exists(), (model.__name__, at_bounds)
    assert sorted(checked) == sorted(
        [
            "Organization.name (add)",
            "Organization.slug (add)",
            "Organization.name",
            "Organization.slug",
            "User.email (add)",
            "User.name (add)",
            "User.email",
            "User.name",
            "AuthSession.end_reason",
            "APIKey.name (add)",
            "APIKey.name",
            "Agent.name (add)",
            "Agent.description (add)",
            "Agent.name",
            "Agent.description",
            "MetricConfig.name (add)",
            "MetricConfig.description (add)",
            "MetricConfig.log_source (add)",
        ]
    )


def test_admin_user_forms_check_the_email_as_it_is_stored(world, operator):
    """Emails are stored lower-case: another case of a taken one is an error beside the field, not the
    unique index's 500 (the model form's own check compared the case typed)."""
    taken = world.member.user.email.upper()
    other = UserFactory(email="other@example.com", name="O", organization=world.org)
    before = database_rows()
    for obj in (None, other):
        r = operator.post(admin_url(User, obj), {**ADMIN_DATA[User](world, obj), "email": taken})
        assert r.status_code == 200, r.status_code
        assert r.context["adminform"].form.errors["email"] == ["A user with this email already exists."]
    assert database_rows() == before
    r = operator.post(admin_url(User, None), {**ADMIN_DATA[User](world, None), "email": "New.Person@Example.COM"})
    assert r.status_code == 302
    assert User.objects.filter(email="new.person@example.com").exists()


def test_admin_has_no_add_form_for_sessions_and_password_tokens(world, operator):
    """They are made by a login and by a reset or invitation (which sends the token): an empty add
    form saved a row without its user or expiry, a 500."""
    before = database_rows()
    for model in (AuthSession, PasswordToken):
        assert operator.get(admin_url(model, None)).status_code == 403
        assert operator.post(admin_url(model, None), {"end_reason": "x"}).status_code == 403
    assert database_rows() == before


def test_admin_api_key_form_names_the_organizations_limit(world, operator, settings):
    settings.MAX_API_KEYS_PER_ORG = 1  # the world's edge key is the one
    before = database_rows()
    r = operator.post(admin_url(APIKey, None), ADMIN_DATA[APIKey](world, None))
    assert r.status_code == 200, r.status_code
    assert r.context["adminform"].form.non_field_errors() == ["An organization may have at most 1 active API keys"]
    assert database_rows() == before


# --- management commands -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["prune_metrics", "prune_history"])
def test_prune_retentions_are_bounded(world, command, settings):
    """Now minus 10**9 days is no date at all (an OverflowError); 0 fell back to the default."""
    for days in ("0", "36501", str(10**9)):
        with pytest.raises(CommandError, match="at least 1 and at most 36500"):
            call_command(command, "--older-than-days", days, stdout=StringIO())
    settings.HISTORY_RETENTION_DAYS = settings.METRICS_RETENTION_DAYS = 10**9
    with pytest.raises(CommandError, match="its setting"):
        call_command(command, stdout=StringIO())
    before = database_rows()
    out = StringIO()
    call_command(command, "--older-than-days", "36500", stdout=out)
    assert "36500 days" in out.getvalue()
    assert database_rows() == before  # nothing is that old


def test_create_api_key_refuses_what_the_api_refuses(world, settings):
    org = ["--org", world.org.slug, "--name", "cli", "--permission", "edge:heartbeat"]
    before = database_rows()
    for expires_at in ("9999-12-31T23:59:59-01:00", "2030-13-01T00:00:00Z", "2030-01-01T00:00:00"):
        with pytest.raises(CommandError, match="--expires-at"):
            call_command("create_api_key", *org, "--expires-at", expires_at, stdout=StringIO())
    settings.MAX_API_KEYS_PER_ORG = 1  # the world's edge key is the one
    with pytest.raises(CommandError, match="at most 1 active API keys"):
        call_command("create_api_key", *org, stdout=StringIO())
    assert database_rows() == before
    settings.MAX_API_KEYS_PER_ORG = 2
    call_command("create_api_key", *org, "--expires-at", "9999-12-31T23:59:59Z", stdout=StringIO())
    assert APIKey.objects.get(name="cli").expires_at == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


# --- derived values ----------------------------------------------------------------------------


def test_organization_slugs_derived_from_the_longest_names_are_unique_and_fit(world):
    name = "Ünïcode & Co " + "x" * 137  # 150 characters; the slug drops what is not ASCII
    slugs = []
    for _ in range(2):
        r = world.anon.post("/api/v1/auth/register", {**register_body(world), "organization_name": name}, format="json")
        assert r.status_code == 201, r.json()
        slugs.append(r.json()["organization"]["slug"])
    assert len(set(slugs)) == 2 and all(len(slug) <= 160 for slug in slugs), slugs


def test_a_slug_taken_meanwhile_is_picked_again(world, monkeypatch):
    """Two registrations of one name at once can pick the same free slug: the one the unique index
    refuses picks again (it was a 500)."""
    OrganizationFactory(name="Acme", slug="acme")
    real = registration._unique_slug
    answers = iter(["acme"])  # what the other registration's check saw before it committed
    monkeypatch.setattr(registration, "_unique_slug", lambda name: next(answers, None) or real(name))
    r = world.anon.post("/api/v1/auth/register", {**register_body(world), "organization_name": "Acme"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["organization"]["slug"].startswith("acme-")


# --- pages and ids -----------------------------------------------------------------------------

LISTS = [
    ("member", "/api/v1/agents"),
    ("admin", "/api/v1/api-keys"),
    ("member", "/api/v1/metric-configs"),
    ("member", "/api/v1/organization/members"),
    ("admin", "/api/v1/audit-events"),
    ("member", "/api/v1/stream/sessions"),
    ("member", "/api/v1/metrics/names"),
    ("member", "/api/v1/metrics/series"),
    ("admin", "/api/v1/notification-channels"),
    ("admin", "/api/v1/notification-channels/{channel}/deliveries"),
]


@pytest.mark.parametrize(("who", "url"), LISTS, ids=[url for _who, url in LISTS])
def test_page_numbers_of_any_size(world, who, url):
    """A page past the end is empty, however far (the offset is never sent to the database); a page
    size is clamped however large; anything else is a 400 naming the parameter."""
    client = getattr(world, who)
    url = url.replace("{channel}", str(world.channel.pk))
    r = client.get(url, {"page": "99999999999999999999", "page_size": "99999999999999999999"})
    assert r.status_code == 200, r.json()
    assert (r.json()["items"], r.json()["page"], r.json()["page_size"]) == ([], 99999999999999999999, 100)
    for name in ("page", "page_size"):
        for value in ("-99999999999999999999", "0", "1e3", "1.5", "9" * 5000):
            assert names_field(assert_error(client.get(url, {name: value}), 400, "validation_error")["details"], name)


MALFORMED_IDS = ["not-a-uuid", "1" * 5000, "00000000-0000-0000-0000-00000000000g", str(uuid.uuid4()) + "0"]
DETAIL_ROUTES = [
    ("member", "get", "/api/v1/agents/{}", {}),
    ("member", "patch", "/api/v1/agents/{}", {}),
    ("member", "get", "/api/v1/agents/{}/config", {}),
    ("member", "put", "/api/v1/agents/{}/config", {}),
    ("admin", "get", "/api/v1/api-keys/{}", {}),
    ("admin", "post", "/api/v1/api-keys/{}/rotate", {}),
    ("admin", "delete", "/api/v1/api-keys/{}", {}),
    ("member", "patch", "/api/v1/metric-configs/{}", {}),
    ("admin", "patch", "/api/v1/organization/members/{}", {}),
    ("member", "get", "/api/v1/stream/sessions/{}", {}),
    ("admin", "get", "/api/v1/notification-channels/{}", {}),
    ("admin", "patch", "/api/v1/notification-channels/{}", {"enabled": False}),
    ("admin", "delete", "/api/v1/notification-channels/{}", {}),
    ("admin", "post", "/api/v1/notification-channels/{}/test", {}),
    ("admin", "get", "/api/v1/notification-channels/{}/deliveries", {}),
    ("edge", "post", "/api/v1/edge/agents/{}/heartbeat", {"status": "online"}),
    ("edge", "get", "/api/v1/edge/agents/{}/metric-config", {}),
    ("edge", "post", "/api/v1/edge/agents/{}/metrics", {"samples": []}),
    ("edge", "post", "/api/v1/edge/agents/{}/stream", {"session_id": str(uuid.uuid4()), "logs": []}),
]


@pytest.mark.parametrize(("who", "method", "url", "body"), DETAIL_ROUTES, ids=[f"{r[1]} {r[2]}" for r in DETAIL_ROUTES])
def test_path_ids_that_are_not_uuids_are_not_found(world, who, method, url, body):
    client = getattr(world, who)
    before = database_rows()
    for value in [*MALFORMED_IDS, str(uuid.uuid4())]:
        assert_error(getattr(client, method)(url.format(value), body, format="json"), 404, "not_found")
    assert database_rows() == before


BODY_IDS = [
    ("member", "/api/v1/stream/start", lambda w, v: {"agent_id": v}, "agent_id"),
    ("member", "/api/v1/stream/stop", lambda w, v: {"session_id": v}, "session_id"),
    ("member", "/api/v1/metric-configs/test", lambda w, v: {"config_id": v, "lines": ["GET"]}, "config_id"),
    ("edge", "/api/v1/edge/heartbeat", lambda w, v: {"agent_id": v, "status": "online"}, "agent_id"),
    ("edge", session_url, lambda w, v: {"session_id": v, "logs": []}, "session_id"),
]


@pytest.mark.parametrize(
    ("who", "url", "body", "field"), BODY_IDS, ids=[case[3] + " " + str(case[1]) for case in BODY_IDS]
)
def test_body_ids_malformed_are_400_and_unknown_are_404(world, who, url, body, field):
    client = getattr(world, who)
    url = url(world) if callable(url) else url
    before = database_rows()
    for value in [*MALFORMED_IDS, 10**40, ["x"], {"id": 1}]:  # 10**40: more than 128 bits
        answer = assert_error(client.post(url, body(world, value), format="json"), 400, "validation_error")
        assert names_field(answer["details"], field), answer
    assert_error(client.post(url, body(world, str(uuid.uuid4())), format="json"), 404, "not_found")
    assert database_rows() == before


# --- addresses from the connection and its headers ---------------------------------------------


@pytest.mark.parametrize(
    ("remote", "forwarded", "stored"),
    [
        ("fe80::1%eth0", None, "fe80::1"),  # an IPv6 zone: PostgreSQL's inet has none
        ("10.0.0.1", "fe80::2%eth1", "fe80::2"),
        ("10.0.0.1", "not-an-address" * 100, "10.0.0.1"),
        ("10.0.0.1", "[2001:db8::7]:443", "2001:db8::7"),
    ],
)
def test_client_addresses_are_stored_as_the_database_holds_them(world, settings, remote, forwarded, stored):
    settings.TRUSTED_PROXY_COUNT = 1 if forwarded else 0
    headers = {"REMOTE_ADDR": remote, **({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})}
    r = world.edge.post(heartbeat_url(world), {"status": "online"}, format="json", **headers)
    assert r.status_code == 200, r.json()
    assert world.agent_now().ip_address == stored
    r = world.anon.post(
        "/api/v1/auth/login", {"email": world.member.user.email, "password": PASSWORD}, format="json", **headers
    )
    assert r.status_code == 200, r.json()
    assert AuditEvent.objects.filter(action="auth.login").latest("created_at").ip_address == stored
