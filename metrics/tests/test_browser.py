"""The metrics pages in a real browser (Chromium via Playwright, against a live Daphne): the
overview, a first agent's key, the explorer's charts, trying rules on sample lines, and what a
viewer may not do."""

import json
import re
import time

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from accounts.tests.factories import OrganizationFactory, UserFactory
from agents.tests.factories import AgentFactory
from metrics.ingest import ingest
from metrics.models import MetricConfig
from metrics.tests.factories import MetricConfigFactory
from metrics.tests.helpers import NGINX_LINES, nginx_example

pytestmark = [pytest.mark.live, pytest.mark.browser]


def heard(agent, status="online"):
    agent.reported_status, agent.last_heartbeat_at = status, timezone.now()
    agent.save()
    return agent


def test_the_overview_shows_the_fleet_and_who_needs_attention(page_as):
    organization = OrganizationFactory()
    heard(AgentFactory(organization=organization, name="store-01"))
    heard(AgentFactory(organization=organization, name="store-02"))
    broken = heard(AgentFactory(organization=organization, name="till-07"), status="error")
    AgentFactory(organization=organization, name="kiosk-03")  # never heard from: offline
    page = page_as(UserFactory(organization=organization, role=Role.VIEWER))
    page.goto("/")
    agents = page.get_by_role("region", name="Agents")
    expect(agents.locator(".big")).to_have_text("4")
    expect(agents.get_by_role("link", name="2 online")).to_have_attribute("href", "/agents?status=online")
    expect(agents.get_by_role("link", name="1 offline")).to_be_visible()
    expect(agents.get_by_role("link", name="1 error")).to_be_visible()
    expect(page.get_by_role("region", name="Config")).to_contain_text("4 not reported")
    expect(page.get_by_role("region", name="Open streams").locator(".big")).to_have_text("0")
    attention = page.get_by_role("region", name="Needs attention")
    expect(attention.get_by_role("listitem")).to_have_count(2)
    expect(attention.get_by_role("listitem").first).to_contain_text("till-07 error")
    expect(attention.get_by_role("link", name="till-07")).to_have_attribute("href", f"/agents/{broken.pk}")
    expect(attention).not_to_contain_text("store-01")
    assert page.console_errors == []


def test_an_admin_connects_the_first_agent_with_a_key_shown_once(page_as):
    admin = UserFactory(organization=OrganizationFactory(), role=Role.ADMIN)
    page = page_as(admin)
    page.goto("/")
    expect(page.get_by_role("heading", name="Connect your first agent")).to_be_visible()
    expect(page.locator("#cmd-run")).to_contain_text(
        "LOGFLEET_API_KEY=lf_prod_... .agent-venv/bin/python -m edge.agent"
    )
    page.get_by_role("button", name="Create an API key for the agent").click()
    key = page.get_by_label("New API key")
    expect(key).to_have_text(re.compile(r"^lf_prod_[A-Za-z0-9]{32}$"))
    raw = key.inner_text()
    expect(page.locator("#cmd-run")).to_contain_text(f"LOGFLEET_API_KEY={raw} .agent-venv/bin/python -m edge.agent")
    expect(page.locator("#cmd-run")).to_contain_text(f"--server {page.url.rstrip('/')} --name")
    # The agent registers with that key: the page notices and shows the fleet.
    registered = page.request.post("/api/v1/edge/register", headers={"X-API-Key": raw}, data={"name": "first"})
    assert registered.status == 201, registered.text()
    expect(page.get_by_role("heading", name="Needs attention")).to_be_visible(timeout=12_000)
    expect(page.get_by_label("New API key")).to_have_count(0)  # shown once
    assert page.console_errors == []


def test_the_explorer_and_the_agent_page_draw_charts_that_follow_the_width(page_as):
    organization = OrganizationFactory()
    agent = AgentFactory(organization=organization, name="store-01")
    now = int(time.time())
    ingest(
        agent=agent,
        batch_id=None,
        samples=[
            {
                "name": "http_requests_total",
                "type": "counter",
                "labels": {"method": method},
                "timestamp": now - 60 * i,
                "value": 10 + i,
            }
            for i in range(30)
            for method in ("GET", "POST")
        ],
    )
    page = page_as(UserFactory(organization=organization, role=Role.VIEWER))
    page.goto("/metrics")
    figure = page.get_by_role("figure", name="http_requests_total")
    expect(figure.locator("canvas")).to_have_count(1)
    wide = figure.locator("canvas").bounding_box()["width"]
    assert wide > 1000, wide
    # Choosing a grouping shows it at once: one line per method in the legend.
    page.get_by_label("Group by").select_option("method")
    expect(page).to_have_url(re.compile(r"group_by=method"))
    expect(figure.locator(".u-legend")).to_contain_text("method=GET")
    expect(figure.locator(".u-legend")).to_contain_text("method=POST")
    # On a phone the chart fits the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("document.querySelector('figure.chart canvas').getBoundingClientRect().width < 390")
    # The agent's page loads its charts with htmx: they are drawn once swapped in.
    page.goto(f"/agents/{agent.pk}")
    panel = page.get_by_role("region", name="Metrics of the last hour")
    expect(panel.get_by_role("figure", name="http_requests_total").locator("canvas")).to_have_count(1)
    assert page.console_errors == []


def test_rules_are_tried_on_sample_lines_before_they_are_saved(page_as):
    organization = OrganizationFactory()
    page = page_as(UserFactory(organization=organization, role=Role.MEMBER))
    page.goto("/rules")
    page.get_by_role("link", name="New metric config").click()
    example = nginx_example()
    page.get_by_label("Name").fill("nginx")
    page.get_by_label("Rules (JSON)").fill(json.dumps(example["metrics"], indent=2))
    page.get_by_label("Sample lines").fill("\n".join(NGINX_LINES))
    page.get_by_role("button", name="Test on sample lines").click()
    results = page.get_by_role("region", name="Test results")
    matches = results.get_by_role("table", name="Matches by line")
    expect(matches.get_by_role("row")).to_have_count(1 + len(NGINX_LINES))
    expect(matches.get_by_role("row").nth(1)).to_contain_text("http_requests_total method:GET = 1.0")
    expect(results.get_by_role("table", name="Samples for one interval")).to_contain_text("request_duration_seconds")
    # A broken pattern is named by its field, and nothing is saved.
    example["metrics"][0]["pattern"] = "(GET"
    page.get_by_label("Rules (JSON)").fill(json.dumps(example["metrics"], indent=2))
    page.get_by_role("button", name="Test on sample lines").click()
    expect(results.get_by_role("alert")).to_contain_text("metrics.0.pattern: invalid RE2 pattern")
    assert not MetricConfig.objects.filter(organization=organization).exists()
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#f-metrics-error")).to_contain_text("metrics.0.pattern")
    expect(page.get_by_label("Name")).to_have_value("nginx")
    assert not MetricConfig.objects.filter(organization=organization).exists()
    example["metrics"][0]["pattern"] = "(GET|POST) "
    page.get_by_label("Rules (JSON)").fill(json.dumps(example["metrics"], indent=2))
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_contain_text("Metric config nginx is created (version 1)")
    assert MetricConfig.objects.get(organization=organization).name == "nginx"
    assert page.console_errors == []


def test_a_viewer_sees_no_controls_that_write_and_a_post_is_refused(page_as):
    organization = OrganizationFactory()
    config = MetricConfigFactory(organization=organization, name="nginx")
    page = page_as(UserFactory(organization=organization, role=Role.VIEWER))
    page.goto("/rules")
    table = page.get_by_role("table", name="Metric configs")
    expect(table.get_by_role("link", name="nginx")).to_be_visible()
    expect(page.get_by_role("link", name="New metric config")).to_have_count(0)
    expect(table.get_by_role("button")).to_have_count(0)
    table.get_by_role("link", name="nginx").click()
    expect(page.get_by_role("button", name="Test on sample lines")).to_be_visible()
    for name in ("Save", "Create", "Delete this config"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    csrf = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    r = page.request.post(f"/rules/{config.pk}/delete", headers={"X-CSRFToken": csrf, "Accept": "text/html"})
    assert r.status == 403 and "Not allowed" in r.text()
    assert MetricConfig.objects.filter(pk=config.pk).exists()
    assert page.console_errors == []
