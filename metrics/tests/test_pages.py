"""The metrics app's pages over HTTP (UI.md): the overview and the first agent's onboarding, the
metric explorer, an agent's charts, and the metric configs with "Test on sample lines".

Where a page shows what an API endpoint answers, the test asks both and compares."""

import html as html_lib
import json
import re
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import F
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, Role
from accounts.tests.factories import OrganizationFactory, UserFactory
from agents.models import Agent
from agents.tests.factories import AgentFactory
from apikeys.models import APIKey
from logfleet.testing import browser_client
from metrics import pages, services
from metrics.ingest import ingest
from metrics.models import MetricConfig
from metrics.tests.factories import MetricConfigFactory
from metrics.tests.helpers import NGINX_LINES, nginx_example

pytestmark = pytest.mark.django_db

STEP = 60


@pytest.fixture
def admin_page(admin_user):
    return browser_client(admin_user)


@pytest.fixture
def member_page(member_user):
    return browser_client(member_user)


@pytest.fixture
def viewer_page(viewer_user):
    return browser_client(viewer_user)


def html(response) -> str:
    return response.content.decode()


def chart_data(response, element_id: str) -> dict:
    """What charts.js draws in the figure `element_id`: its data-series JSON."""
    found = re.search(rf'<figure class="chart" id="{element_id}" data-series="([^"]*)">', html(response))
    assert found, html(response)[:3000]
    return json.loads(unescape(found.group(1)))


def captions(response) -> list[str]:
    return re.findall(r"<figcaption>(?:<a [^>]*>)?([^<]+)", html(response))


def field_error(response, field: str) -> str:
    """The message shown beside a form field."""
    found = re.search(rf'id="f-{field}-error">(.*?)</p>', html(response), re.S)
    assert found, (field, html(response)[:4000])
    return found.group(1).strip()


def unescape(text: str) -> str:
    return html_lib.unescape(text)


def sample(name, kind, ts, value=None, labels=None, histogram=None):
    body = {"name": name, "type": kind, "labels": labels or {}, "timestamp": ts}
    body.update({"histogram": histogram} if histogram is not None else {"value": value})
    return body


def heard(agent, *, status="online", config=None):
    """The agent's last heartbeat was just now, reporting `status`; `config` is what it said of its
    config: "applied" (the current one), "failed" (the current one), "old" (applied an older one)."""
    agent.reported_status = status
    agent.last_heartbeat_at = timezone.now()
    if config == "applied":
        agent.config_report_state, agent.config_report_hash = "applied", agent.config_hash
        agent.applied_config_hash = agent.config_hash
    elif config == "failed":
        agent.config_report_state, agent.config_report_hash = "failed", agent.config_hash
    elif config == "old":
        agent.config_report_state, agent.config_report_hash, agent.applied_config_hash = "applied", "old", "old"
    agent.save()
    return agent


@pytest.fixture
def base():
    """A bucket-aligned time ten minutes ago."""
    return (int(time.time()) // STEP - 10) * STEP


# --- the overview ------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(db):
    for path in ("/", "/metrics", "/rules", "/metrics/panel?agent_id=x"):
        r = Client().get(path)
        assert r.status_code == 302 and r["Location"].startswith("/login?next="), (path, r)


def test_overview_shows_the_summary_and_the_agents_that_need_attention(viewer_page, viewer_client, org, other_org):
    healthy = heard(AgentFactory(organization=org, name="healthy"), config="applied")
    broken = heard(AgentFactory(organization=org, name="broken"), status="error", config="applied")
    failing = heard(AgentFactory(organization=org, name="failing"), config="failed")
    heard(AgentFactory(organization=org, name="catching-up"), config="old")
    silent = AgentFactory(organization=org, name="silent")
    AgentFactory(organization=other_org, name="elsewhere")
    ingest(agent=healthy, batch_id=None, samples=[sample("req", "counter", time.time() - 30, 3)])

    r = viewer_page.get("/")
    assert r.status_code == 200
    page = html(r)
    summary = viewer_client.get("/api/v1/dashboard/summary").json()
    assert summary["agents"] == {"total": 5, "online": 3, "offline": 1, "error": 1}
    assert summary["configs"] == {"in_sync": 2, "pending": 1, "failed": 1, "unknown": 1}
    for count, word in ((3, "online"), (1, "offline"), (1, "error"), (1, "pending"), (1, "failed")):
        assert re.search(rf"<strong>{count}</strong> {word}<", page), word
    assert re.search(r'class="big">2<small> in sync', page)
    assert re.search(r'class="big">1<small> series', page) and "<strong>1</strong> samples in the last hour" in page
    attention = page[page.index("Needs attention") :]
    links = re.findall(r'<a href="/agents/([0-9a-f-]+)">([^<]+)</a>', attention)
    # Errors first, then failed configs, then offline agents.
    assert links == [(str(broken.pk), "broken"), (str(failing.pk), "failing"), (str(silent.pk), "silent")]
    assert "healthy" not in attention and "catching-up" not in attention and "elsewhere" not in page
    assert 'href="/agents?status=offline"' in attention and 'href="/agents?status=error"' in attention


def test_config_status_counted_in_the_query_is_each_agents_own(org):
    states = [None, "applied", "failed", "old"]
    agents = [heard(AgentFactory(organization=org), config=state) for state in states]
    failed_elsewhere = heard(AgentFactory(organization=org), config="failed")
    failed_elsewhere.config_report_hash = "an older config"  # it failed an older one: it is pending now
    failed_elsewhere.save()
    agents.append(failed_elsewhere)
    queried = dict(Agent.objects.with_config_status().annotate(state=F("config_state")).values_list("pk", "state"))
    assert {agent.pk: agent.config_status for agent in agents} == queried
    assert sorted(queried.values()) == ["failed", "in_sync", "pending", "pending", "unknown"]


def test_needs_attention_is_capped_and_costs_a_few_queries(viewer_page, org, django_assert_max_num_queries):
    AgentFactory.create_batch(25, organization=org)
    with django_assert_max_num_queries(12):
        r = viewer_page.get("/")
    page = html(r)
    assert page.count('<a href="/agents/') == pages.ATTENTION_LIMIT
    assert f"Showing {pages.ATTENTION_LIMIT} of 25." in page


def test_the_tiles_refresh_themselves_without_the_layout(viewer_page, org):
    agent = AgentFactory(organization=org)
    r = viewer_page.get("/", HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "<html" not in html(r) and 'id="fleet"' in html(r)
    assert 'hx-get="/" hx-trigger="every 30s"' in html(r)  # and goes on refreshing
    agent.delete()  # the last agent is gone: the whole page changes to the onboarding
    assert viewer_page.get("/", HTTP_HX_REQUEST="true")["HX-Redirect"] == "/"


def test_a_new_organization_is_shown_how_to_connect_its_first_agent(org, admin_user, member_user, viewer_user):
    for user in (admin_user, member_user, viewer_user):
        page = html(browser_client(user).get("/"))
        assert "Connect your first agent" in page and "Needs attention" not in page
        assert "python3 -m venv .agent-venv &amp;&amp; .agent-venv/bin/pip install google-re2==" in page
        run = re.search(r'<code id="cmd-run">(.*?)</code>', page).group(1)
        assert unescape(run) == (
            "LOGFLEET_API_KEY=lf_prod_... .agent-venv/bin/python -m edge.agent --server http://testserver "
            '--name "$(hostname)" --source nginx=/var/log/nginx/access.log'
        )
        can_create = ">Create an API key for the agent<" in page
        assert can_create == (user.role == Role.ADMIN), user.role
        assert ("An admin of" in page) == (user.role != Role.ADMIN)


def test_a_deployments_public_url_is_the_agents_server(admin_page, settings):
    settings.PUBLIC_URL = "https://logfleet.example.com"
    assert "--server https://logfleet.example.com --name" in html(admin_page.get("/"))


def test_the_agents_packages_are_the_pins_of_requirements_txt():
    pins = Path(settings.BASE_DIR, "requirements.txt").read_text().split()
    for package in pages.AGENT_PACKAGES:
        assert package in pins, package


def test_an_admin_creates_the_agents_key_shown_once_and_filled_into_the_command(admin_page, admin_user, org):
    r = admin_page.post("/first-agent/key", HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    page = html(r)
    raw = re.search(r'<output id="new-api-key" aria-label="New API key">([^<]+)</output>', page).group(1)
    assert f"LOGFLEET_API_KEY={raw} .agent-venv/bin/python -m edge.agent" in page
    assert "<html" not in page  # the onboarding section, swapped in place
    key = APIKey.objects.get(organization=org)
    assert (key.name, key.created_by_id) == (pages.FIRST_KEY_NAME, admin_user.pk)
    assert sorted(key.permissions) == sorted(pages.EDGE_PERMISSIONS)
    assert AuditEvent.objects.filter(action="api_key.created", actor_id=admin_user.pk).count() == 1
    assert raw not in html(admin_page.get("/"))  # shown once
    # It is a working agent key: the agent registers with it.
    r = Client().post("/api/v1/edge/register", {"name": "first"}, content_type="application/json", HTTP_X_API_KEY=raw)
    assert r.status_code == 201, r.json()
    # Without htmx (no JavaScript) the whole page comes back with the key.
    assert 'aria-label="New API key"' in html(admin_page.post("/first-agent/key"))


def test_only_an_admin_creates_the_key(member_page, viewer_page, org):
    for client in (member_page, viewer_page):
        r = client.post("/first-agent/key")
        assert r.status_code == 403 and "Not allowed" in html(r)
    assert not APIKey.objects.filter(organization=org).exists()


def test_onboarding_moves_on_once_the_first_agent_registers(viewer_page, org):
    r = viewer_page.get("/?wait=first-agent", HTTP_HX_REQUEST="true")
    assert r.status_code == 204
    AgentFactory(organization=org)
    r = viewer_page.get("/?wait=first-agent", HTTP_HX_REQUEST="true")
    assert r["HX-Redirect"] == "/"


# --- the metric explorer -----------------------------------------------------------------------


@pytest.fixture
def traffic(agent, org, base):
    """Two agents' requests by method, a gauge and a histogram, over the last ten minutes."""
    other = AgentFactory(organization=org, name="store-02")
    buckets = {"0.1": 2, "0.5": 6, "1.0": 9, "+Inf": 10}
    ingest(
        agent=agent,
        batch_id=None,
        samples=[
            sample("req", "counter", base + 5, 2, {"method": "GET"}),
            sample("req", "counter", base + 30, 3, {"method": "POST"}),
            sample("req", "counter", base + STEP + 1, 4, {"method": "GET"}),
            sample("cpu", "gauge", base + 5, 40.0),
            sample("cpu", "gauge", base + STEP + 5, 60.0),
            sample("latency", "histogram", base + 5, histogram={"count": 10, "sum": 4.2, "buckets": buckets}),
        ],
    )
    ingest(agent=other, batch_id=None, samples=[sample("req", "counter", base + 10, 10, {"method": "GET"})])
    return agent, other


def window(base, **params):
    return {"range": "custom", "start": base - STEP, "end": base + 3 * STEP, "step": STEP, **params}


def api_params(params: dict) -> dict:
    return {key: value for key, value in params.items() if key != "range"}


def test_the_explorer_charts_what_the_query_api_answers(viewer_page, viewer_client, traffic, base):
    for params in (
        {"name": "req", "agg": "sum"},
        {"name": "req", "agg": "rate", "group_by": "method"},
        {"name": "req", "agg": "sum", "group_by": "agent_id"},
        {"name": "req", "agg": "count", "agent_id": str(traffic[1].pk)},
        {"name": "cpu", "agg": "max"},
        {"name": "latency", "agg": "count"},
    ):
        asked = window(base, **params)
        r = viewer_page.get("/metrics", asked)
        assert r.status_code == 200, html(r)[:2000]
        assert captions(r) == [params["name"]]
        data = chart_data(r, "explorer-chart")
        api = viewer_client.get("/api/v1/metrics/query", api_params(asked)).json()
        assert [line["points"] for line in data["series"]] == [series["points"] for series in api["series"]], params
        assert (data["name"], data["type"], data["agg"], data["step"]) == (api["name"], api["type"], api["agg"], STEP)
        assert (data["start"], data["end"]) == (base - STEP, base + 3 * STEP)


def test_a_histogram_is_drawn_as_its_p50_p90_and_p99(viewer_page, viewer_client, traffic, base):
    r = viewer_page.get("/metrics", {"name": "latency", "range": "1h"})
    data = chart_data(r, "explorer-chart")
    assert data["agg"] == "quantiles" and [line["label"] for line in data["series"]] == ["p50", "p90", "p99"]
    for line in data["series"]:
        api = viewer_client.get(
            "/api/v1/metrics/query",
            {"name": "latency", "agg": line["label"], "start": data["start"], "end": data["end"], "step": data["step"]},
        ).json()
        assert line["points"] == api["series"][0]["points"]


def test_each_type_has_its_default_aggregation_and_the_range_its_step(viewer_page, traffic):
    for name, agg in (("req", "sum"), ("cpu", "avg"), ("latency", "quantiles")):
        data = chart_data(viewer_page.get("/metrics", {"name": name}), "explorer-chart")
        assert (data["agg"], data["step"], data["end"] - data["start"]) == (agg, 60, 3600), name
    for span, step in (("15m", 60), ("6h", 60), ("24h", 300), ("7d", 1800)):
        data = chart_data(viewer_page.get("/metrics", {"name": "req", "range": span}), "explorer-chart")
        assert data["step"] == step, span
    # No name: the first metric, by name.
    assert captions(viewer_page.get("/metrics")) == ["cpu"]


def test_an_aggregation_chosen_for_another_metric_does_not_carry_over(viewer_page, traffic):
    r = viewer_page.get("/metrics", {"name": "latency", "agg": "rate", "group_by": "method", "for_name": "req"})
    assert r.status_code == 200
    data = chart_data(r, "explorer-chart")
    assert data["agg"] == "quantiles" and [line["label"] for line in data["series"]] == ["p50", "p90", "p99"]


def test_bad_parameters_are_shown_beside_their_field_in_the_apis_words(viewer_page, viewer_client, traffic, base):
    for params, field in (
        ({"step": 5}, "step"),
        ({"step": "often"}, "step"),
        ({"start": base - 40 * 86400}, "start"),
        ({"end": base - 2 * STEP}, "end"),
        ({"agg": "p99"}, "agg"),
        ({"agg": "median"}, "agg"),
        ({"agent_id": "not-a-uuid"}, "agent_id"),
    ):
        asked = window(base, name="req", **params)
        r = viewer_page.get("/metrics", asked)
        assert r.status_code == 400, params
        api = viewer_client.get("/api/v1/metrics/query", api_params(asked)).json()
        assert unescape(field_error(r, field)) == api["details"][field], params
        assert "explorer-chart" not in html(r)
    r = viewer_page.get("/metrics", {"name": "req", "range": "custom", "start": "", "end": ""})
    assert r.status_code == 400 and "required for a custom range" in html(r)


def test_the_explorer_shows_the_apis_warnings(viewer_page, viewer_client, traffic, base):
    asked = window(base, name="req", group_by="zone")
    r = viewer_page.get("/metrics", asked)
    warnings = viewer_client.get("/api/v1/metrics/query", api_params(asked)).json()["warnings"]
    assert warnings and all(unescape(warning) in unescape(html(r)) for warning in warnings)


def test_custom_times_without_an_offset_are_read_as_utc(viewer_page, traffic, base):
    from datetime import UTC, datetime

    def local(seconds):
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M")

    r = viewer_page.get("/metrics", {"name": "req", "range": "custom", "start": local(base), "end": local(base + 120)})
    data = chart_data(r, "explorer-chart")
    assert (data["start"], data["end"]) == (base, base + 120)
    assert f'value="{local(base)}"' in html(r)


def test_the_explorer_lists_only_this_organizations_metrics(viewer_page, traffic, other_org):
    elsewhere = AgentFactory(organization=other_org)
    ingest(agent=elsewhere, batch_id=None, samples=[sample("secret_metric", "counter", time.time() - 30, 1)])
    page = html(viewer_page.get("/metrics"))
    assert "secret_metric" not in page and ">req (counter)<" in page
    r = viewer_page.get("/metrics", {"name": "secret_metric"})
    assert "no metric named secret_metric in this organization" in html(r)
    assert '<option value="secret_metric" selected>secret_metric (no series)</option>' in html(r)


def test_the_agent_menu_is_short_but_keeps_the_chosen_agent(viewer_page, org, monkeypatch):
    monkeypatch.setattr(pages, "AGENT_CHOICES", 3)
    agents = [AgentFactory(organization=org, name=f"edge-{i}") for i in range(5)]
    for agent in agents:
        ingest(agent=agent, batch_id=None, samples=[sample("req", "counter", time.time() - 30, 1)])
    page = html(viewer_page.get("/metrics", {"name": "req"}))
    assert re.findall(r">(edge-\d)</option>", page) == ["edge-0", "edge-1", "edge-2"]
    assert "The first 3 agents by name" in page
    r = viewer_page.get("/metrics", {"name": "req", "agent_id": str(agents[4].pk)})
    assert re.findall(r">(edge-\d)</option>", html(r)) == ["edge-0", "edge-1", "edge-2", "edge-4"]
    assert f'<option value="{agents[4].pk}" selected>edge-4</option>' in html(r)


def test_an_organization_without_metrics_is_told_where_they_come_from(viewer_page):
    r = viewer_page.get("/metrics")
    assert r.status_code == 200 and "No metrics yet" in html(r) and 'href="/rules"' in html(r)


# --- one agent's charts ------------------------------------------------------------------------


def test_the_agent_panel_has_a_chart_per_metric_of_that_agent(viewer_page, traffic, django_assert_max_num_queries):
    agent, other = traffic
    with django_assert_max_num_queries(12):
        r = viewer_page.get("/metrics/panel", {"agent_id": str(agent.pk)}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "<html" not in html(r)
    assert captions(r) == ["cpu", "latency", "req"]
    req = chart_data(r, "agent-chart-2")
    assert req["series"][0]["points"][0][1] == 5.0  # this agent's only, not store-02's 10
    assert f'href="/metrics?name=req&amp;agent_id={agent.pk}"' in html(r)
    assert captions(viewer_page.get("/metrics/panel", {"agent_id": str(other.pk)})) == ["req"]
    # Without htmx: a page of its own, with the layout and the chart scripts.
    page = html(viewer_page.get("/metrics/panel", {"agent_id": str(agent.pk)}))
    assert "<html" in page and "logfleet/charts.js" in page and "uPlot.iife.min.js" in page


def test_the_agent_panel_is_capped(viewer_page, agent, django_assert_max_num_queries):
    now = time.time() - 30
    ingest(agent=agent, batch_id=None, samples=[sample(f"m{i:02d}", "gauge", now, i) for i in range(15)])
    # One query a chart (its rollups), whatever the agent has; a few for the page itself.
    with django_assert_max_num_queries(pages.PANEL_CHARTS + 6):
        r = viewer_page.get("/metrics/panel", {"agent_id": str(agent.pk)}, HTTP_HX_REQUEST="true")
    assert len(captions(r)) == pages.PANEL_CHARTS and "of 15 metrics shown" in html(r)


def test_another_organizations_agent_has_no_panel(viewer_page, other_org, db):
    elsewhere = AgentFactory(organization=other_org)
    for agent_id in (str(elsewhere.pk), "not-a-uuid", ""):
        r = viewer_page.get("/metrics/panel", {"agent_id": agent_id}, HTTP_HX_REQUEST="true")
        assert r.status_code == 404, agent_id


def test_an_agent_without_metrics_says_so(viewer_page, agent):
    r = viewer_page.get("/metrics/panel", {"agent_id": str(agent.pk)}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "pushed no metrics yet" in html(r)


# --- metric configs ----------------------------------------------------------------------------


def form_of(config: dict, **changes) -> dict:
    """A config as the editor's form posts it."""
    data = {
        "name": config["name"],
        "description": config.get("description", ""),
        "log_source": config.get("log_source", "*"),
        "agent_selector": json.dumps(config.get("agent_selector", {})),
        "metrics": json.dumps(config["metrics"]),
        "enabled": "on",
        **changes,
    }
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def config(org, member_user):
    return services.metric_config_create(organization=org, actor=member_user, **nginx_example())


def test_the_rules_page_lists_the_configs(viewer_page, config, org, other_org, django_assert_max_num_queries):
    MetricConfigFactory(organization=other_org, name="not-ours")
    MetricConfigFactory.create_batch(55, organization=org, agent_selector={"env": "prod"})
    with django_assert_max_num_queries(8):
        r = viewer_page.get("/rules")
    page = html(r)
    assert "<caption>Metric configs</caption>" in page and "not-ours" not in page
    assert page.count('<a href="/rules/') == 50 and "1\u201350 of 56 configs" in page and "Page 1 of 2" in page
    page = html(viewer_page.get("/rules", {"page": 2}))
    assert f'<a href="/rules/{config.pk}">nginx_metrics</a>' in page and page.count('<a href="/rules/') == 6
    row = page[page.index("nginx_metrics</a>") :]
    assert viewer_page.get("/rules", {"page": "zero"}).status_code == 400
    cells = r'enabled</span>.*?<code>nginx</code>.*?every agent.*?data-label="Rules">3<.*?data-label="Version">1<'
    assert re.search(cells, row, re.S)


def test_a_member_creates_a_config_through_the_form(member_page, member_user, org):
    example = nginx_example()
    r = member_page.post("/rules/new", form_of(example, agent_selector=json.dumps({"env": "prod"})))
    config = MetricConfig.objects.get(organization=org)
    assert (r.status_code, r["Location"]) == (302, f"/rules/{config.pk}")
    assert (config.name, config.log_source, config.enabled, config.agent_selector) == (
        "nginx_metrics",
        "nginx",
        True,
        {"env": "prod"},
    )
    assert [rule["name"] for rule in config.metrics] == [rule["name"] for rule in example["metrics"]]
    assert AuditEvent.objects.filter(action="metric_config.created", actor_id=member_user.pk).exists()
    assert "is created (version 1)" in html(member_page.get(r["Location"]))


def test_a_bad_rule_is_named_beside_the_rules_and_nothing_is_saved(member_page, member_client, org):
    example = nginx_example()
    example["metrics"][1]["pattern"] = "HTTP/(\\d"
    r = member_page.post("/rules/new", form_of(example, description="typed text"))
    assert r.status_code == 400
    api = member_client.post("/api/v1/metric-configs", example, format="json").json()
    assert "metrics.1.pattern" in api["details"]
    assert f"<code>metrics.1.pattern</code>: {api['details']['metrics.1.pattern']}" in unescape(html(r))
    assert 'value="typed text"' in html(r) and "HTTP/(\\\\d" in unescape(html(r))  # what was typed stays
    assert not MetricConfig.objects.filter(organization=org).exists()


def test_json_that_does_not_parse_is_named(member_page, org):
    r = member_page.post("/rules/new", form_of(nginx_example(), metrics="[{", agent_selector="{env"))
    assert r.status_code == 400
    assert "is not valid JSON" in field_error(r, "metrics") and "is not valid JSON" in field_error(r, "agent_selector")
    assert not MetricConfig.objects.filter(organization=org).exists()


def test_a_taken_name_is_a_conflict_beside_the_name(member_page, config):
    r = member_page.post("/rules/new", form_of(nginx_example()))
    assert r.status_code == 409 and field_error(r, "name") == "already used"


def test_a_member_edits_a_config_with_its_current_version(member_page, config):
    changed = form_of(nginx_example(), description="Edited", version=1)
    changed.pop("enabled")  # unchecked: disabled
    r = member_page.post(f"/rules/{config.pk}", changed)
    assert (r.status_code, r["Location"]) == (302, f"/rules/{config.pk}")
    config.refresh_from_db()
    assert (config.description, config.enabled, config.version) == ("Edited", False, 2)


def test_a_stale_version_is_shown_and_nothing_is_overwritten(member_page, config):
    assert member_page.post(f"/rules/{config.pk}", form_of(nginx_example(), description="first", version=1))
    r = member_page.post(f"/rules/{config.pk}", form_of(nginx_example(), description="second", version=1))
    assert r.status_code == 409
    page = html(r)
    assert "version 2 is current, you started from version 1" in page and "Nothing was overwritten" in page
    assert 'value="second"' in page  # the edits are still there to copy
    config.refresh_from_db()
    assert (config.description, config.version) == ("first", 2)


def test_members_enable_and_disable_from_the_list(member_page, config):
    r = member_page.post(f"/rules/{config.pk}/enabled", {"enabled": "false", "version": 1, "next": "/rules?page=1"})
    assert (r.status_code, r["Location"]) == (302, "/rules?page=1")
    config.refresh_from_db()
    assert (config.enabled, config.version) == (False, 2)
    r = member_page.post(f"/rules/{config.pk}/enabled", {"enabled": "true", "version": 1}, follow=True)
    assert "nginx_metrics is unchanged" in html(r)
    config.refresh_from_db()
    assert (config.enabled, config.version) == (False, 2)


def test_a_member_deletes_a_config(member_page, config):
    r = member_page.post(f"/rules/{config.pk}/delete")
    assert (r.status_code, r["Location"]) == (302, "/rules")
    assert not MetricConfig.objects.filter(pk=config.pk).exists()
    assert AuditEvent.objects.filter(action="metric_config.deleted").exists()


def test_a_viewer_sees_no_controls_that_write_and_the_server_refuses_them(viewer_page, config):
    page = html(viewer_page.get("/rules"))
    assert "New metric config" not in page and "Disable" not in page
    page = html(viewer_page.get(f"/rules/{config.pk}"))
    assert ">Save<" not in page and "Delete this config" not in page and 'name="name"' not in page
    assert "readonly" in page and ">Test on sample lines<" in page
    for path, data in (
        ("/rules/new", form_of(nginx_example(), name="sneaky")),
        (f"/rules/{config.pk}", form_of(nginx_example(), description="sneaky", version=1)),
        (f"/rules/{config.pk}/enabled", {"enabled": "false", "version": 1}),
        (f"/rules/{config.pk}/delete", {}),
    ):
        r = viewer_page.post(path, data)
        assert r.status_code == 403 and "Not allowed" in html(r), path
    config.refresh_from_db()
    assert (config.version, config.enabled, config.description) == (1, True, nginx_example()["description"])
    assert MetricConfig.objects.count() == 1
    assert viewer_page.get("/rules/new").status_code == 403


def test_another_organizations_config_is_not_found(member_page, other_org):
    elsewhere = MetricConfigFactory(organization=other_org, name="theirs")
    assert member_page.get(f"/rules/{elsewhere.pk}").status_code == 404
    assert member_page.post(f"/rules/{elsewhere.pk}/delete").status_code == 404
    assert member_page.post(f"/rules/{elsewhere.pk}/enabled", {"enabled": "false", "version": 1}).status_code == 404
    assert MetricConfig.objects.filter(pk=elsewhere.pk, enabled=True).exists()


def test_sample_lines_are_tried_like_the_apis_test(viewer_page, viewer_client):
    example = nginx_example()
    typed = {"metrics": json.dumps(example["metrics"]), "lines": "\n".join(NGINX_LINES)}
    r = viewer_page.post("/rules/test", typed, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "<html" not in html(r)
    api = viewer_client.post(
        "/api/v1/metric-configs/test", {"metrics": example["metrics"], "lines": NGINX_LINES}, format="json"
    ).json()
    page = unescape(html(r))
    assert "<caption>Matches by line</caption>" in page and "<caption>Samples for one interval</caption>" in page
    assert f"{len(NGINX_LINES)} lines tried, {len(api['samples'])} samples" in page
    for entry in api["results"]:
        for match in entry["matches"]:
            labels = "".join(f' <span class="label">{k}:{v}</span>' for k, v in match["labels"].items())
            assert f"<code>{match['metric']}</code>{labels} = <strong>{match['value']}</strong>" in page, match
    assert "no rule matches" in page  # the last line
    assert not MetricConfig.objects.exists()


def test_a_bad_pattern_in_the_test_names_the_field(viewer_page, viewer_client):
    rules = [{"name": "x", "type": "counter", "pattern": "(unclosed"}]
    r = viewer_page.post("/rules/test", {"metrics": json.dumps(rules), "lines": "a line"}, HTTP_HX_REQUEST="true")
    api = viewer_client.post("/api/v1/metric-configs/test", {"metrics": rules, "lines": ["a"]}, format="json").json()
    assert r.status_code == 400 and 'role="alert"' in html(r)
    assert f"<code>metrics.0.pattern</code>: {api['details']['metrics.0.pattern']}" in unescape(html(r))
    r = viewer_page.post("/rules/test", {"metrics": "not json", "lines": "a"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 400 and "<code>metrics</code>: is not valid JSON" in html(r)
    r = viewer_page.post("/rules/test", {"metrics": json.dumps(rules), "lines": "a"})
    assert r.status_code == 400 and "<html" in html(r)  # without htmx: a page of its own


def test_a_test_too_large_to_run_says_so_in_the_region(viewer_page, settings):
    settings.METRIC_TEST_MAX_WORK = 10
    typed = {"metrics": json.dumps([{"name": "x", "type": "counter", "pattern": "a"}]), "lines": "a long line\n" * 5}
    r = viewer_page.post("/rules/test", typed, HTTP_HX_REQUEST="true")
    assert r.status_code == 400 and "This test would match" in html(r) and "the budget is 10" in html(r)
    assert viewer_page.post("/rules/test", typed).status_code == 413  # without htmx: the API's status


def test_the_pages_keep_to_the_content_security_policy(admin_page, traffic, config, org):
    AgentFactory.create_batch(2, organization=org)
    for path in ("/", "/metrics", "/metrics?name=latency", "/rules", f"/rules/{config.pk}", "/rules/new"):
        r = admin_page.get(path)
        assert r.status_code == 200 and "Content-Security-Policy" in r, path
        page = html(r)
        for script in re.findall(r"<script[^>]*>", page):
            assert "src=" in script or 'type="application/json"' in script, (path, script)
        assert not re.search(r"\sstyle=|\son[a-z]+=|hx-on", page), path
    empty = browser_client(UserFactory(organization=OrganizationFactory(), role=Role.ADMIN))
    assert not re.search(r"\sstyle=|\son[a-z]+=|hx-on", html(empty.get("/")))


def test_page_reads_are_not_rate_limited(viewer_page, traffic, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "dashboard": "2/m", "agents": "2/m"}
    for _ in range(5):
        assert viewer_page.get("/rules").status_code == 200
        assert viewer_page.get("/metrics").status_code == 200
        assert viewer_page.get("/").status_code == 200


def test_old_samples_fall_out_of_the_default_range(viewer_page, agent):
    ingest(agent=agent, batch_id=None, samples=[sample("old", "counter", time.time() - 2 * 3600, 1)])
    r = viewer_page.get("/metrics", {"name": "old"})
    assert "no samples in this range" in html(r)
    r = viewer_page.get("/metrics", {"name": "old", "range": "6h"})
    assert "no samples in this range" not in html(r)
