"""The agents pages in a real browser (Chromium via Playwright, against a live Daphne)."""

import json
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from accounts.tests.factories import UserFactory
from agents import services
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key

pytestmark = [pytest.mark.live, pytest.mark.browser]


def seen(agent, *, status="online", ago=0):
    agent.reported_status = status
    agent.last_heartbeat_at = timezone.now() - timedelta(seconds=ago)
    agent.save(update_fields=["reported_status", "last_heartbeat_at"])
    return agent


def heartbeat(site, raw_key: str, agent, status: str = "online") -> None:
    """What the agent on the device does: POST its heartbeat to the Edge API."""
    request = urllib.request.Request(
        f"{site.url}/api/v1/edge/agents/{agent.pk}/heartbeat",
        data=json.dumps({"status": status}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": raw_key},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def without_charts(page):
    """The metrics panel is the metrics app's: these tests answer it with an empty one."""
    page.route("**/metrics/panel?*", lambda route: route.fulfill(status=200, content_type="text/html", body="<p></p>"))
    return page


def names(page) -> list[str]:
    return page.get_by_role("table", name="Agents").locator("tbody td.name a").all_inner_texts()


def test_filter_and_sort_the_agents_table(page_as):
    user = UserFactory(role=Role.VIEWER)
    org = user.organization
    seen(AgentFactory(organization=org, name="web-1", labels={"env": "prod", "role": "web"}), ago=5)
    seen(AgentFactory(organization=org, name="web-2", labels={"env": "prod", "role": "web"}), ago=50)
    seen(AgentFactory(organization=org, name="db-1", labels={"env": "prod", "role": "db"}), status="error")
    AgentFactory(organization=org, name="web-3", hostname="old.example", labels={"env": "dev", "role": "web"})
    page = page_as(user)
    page.goto("/agents")
    expect(page.get_by_role("table", name="Agents").locator("tbody tr")).to_have_count(4)

    page.get_by_label("Status").select_option("online")
    page.get_by_label("Label", exact=True).fill("role:web")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url("/agents?search=&status=online&label=role%3Aweb")
    assert names(page) == ["web-1", "web-2"]
    page.get_by_label("Label", exact=True).fill("env:prod")  # a second label filter, the first one kept
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="Remove the label filter role:web")).to_be_visible()
    assert names(page) == ["web-1", "web-2"]

    page.get_by_role("link", name="Name").click()  # sorted by name: the other way round
    expect(page.get_by_role("columnheader", name="Name")).to_have_attribute("aria-sort", "descending")
    assert names(page) == ["web-2", "web-1"]
    page.get_by_role("link", name="Last heartbeat").click()  # newest first
    expect(page.get_by_role("columnheader", name="Last heartbeat")).to_have_attribute("aria-sort", "descending")
    assert names(page) == ["web-1", "web-2"]

    page.get_by_role("link", name="Clear filters").click()
    page.get_by_label("Search").fill("OLD.ex")  # the hostname
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("table", name="Agents").locator("tbody tr")).to_have_count(1)
    assert names(page) == ["web-3"]
    assert page.console_errors == []


def test_a_status_changes_in_the_open_table_without_a_reload(page_as, site):
    user = UserFactory(role=Role.VIEWER)
    agent = AgentFactory(organization=user.organization, name="edge-7")
    seen(AgentFactory(organization=user.organization, name="edge-8"), status="error")
    _key, raw_key = make_key(user.organization, permissions=["edge:heartbeat"])
    page = page_as(user)
    page.goto("/agents")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="edge-7", exact=True))
    expect(row.locator(".status").first).to_have_text("offline")
    page.evaluate("window.notReloaded = true")

    heartbeat(site, raw_key, agent)  # the agent comes online while the page is open

    expect(row.locator(".status").first).to_have_text("online", timeout=15_000)
    assert page.evaluate("window.notReloaded") is True
    other = page.get_by_role("row").filter(has=page.get_by_role("link", name="edge-8", exact=True))
    expect(other.locator(".status").first).to_have_text("error")
    assert page.console_errors == []


def test_edit_the_config_and_meet_a_version_conflict(page_as):
    member = UserFactory(role=Role.MEMBER)
    agent = AgentFactory(organization=member.organization, name="edge-9")
    page = without_charts(page_as(member))
    page.goto(f"/agents/{agent.pk}")
    editor = page.get_by_label("Configuration (JSON)")
    editor.fill(json.dumps({"retention_hours": 24}))
    page.get_by_role("button", name="Save configuration").click()
    expect(page.get_by_role("status")).to_contain_text("Configuration saved as version 2.")
    expect(editor).to_contain_text('"retention_hours": 24')

    # Someone else saves while this person edits the version-2 text they have open.
    agent.refresh_from_db()
    services.agent_config_update(agent=agent, version=2, config={**agent.config, "retention_hours": 48}, actor=None)
    editor.fill(json.dumps({"retention_hours": 12}))
    page.get_by_role("button", name="Save configuration").click()
    expect(page.get_by_role("alert")).to_contain_text("someone saved version 3 while you were editing version 2")
    expect(page.get_by_role("heading", name="Current configuration (version 3)")).to_be_visible()
    expect(page.get_by_label("Current configuration (version 3)")).to_contain_text('"retention_hours": 48')
    expect(editor).to_have_value('{"retention_hours": 12}')
    agent.refresh_from_db()
    assert (agent.config_version, agent.config["retention_hours"]) == (3, 48)

    page.get_by_role("button", name="Save configuration").click()  # having seen version 3: mine wins
    expect(page.get_by_role("status")).to_contain_text("Configuration saved as version 4.")
    agent.refresh_from_db()
    assert agent.config["retention_hours"] == 12
    assert page.console_errors == []


def test_a_viewer_sees_the_agent_but_no_edit_controls(page_as):
    viewer = UserFactory(role=Role.VIEWER)
    agent = seen(AgentFactory(organization=viewer.organization, name="edge-10", labels={"env": "prod"}))
    page = without_charts(page_as(viewer, viewport=(390, 844)))
    page.goto(f"/agents/{agent.pk}")
    expect(page.get_by_role("heading", name="edge-10 online")).to_be_visible()
    expect(page.get_by_text("env:prod")).to_be_visible()
    expect(page.get_by_label("Configuration (JSON)")).to_contain_text('"heartbeat_interval_seconds": 30')
    for name in ("Save labels", "Save configuration", "Delete agent", "Start live tail"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_role("textbox")).to_have_count(0)
    assert page.console_errors == []
