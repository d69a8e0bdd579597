"""The agents pages over HTTP (UI.md): the agents table (filters, sort, pages, the htmx refresh)
and one agent's page (facts, labels and config edits, the version conflict, roles, tenancy)."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from accounts.browser import SESSION_KEY
from accounts.models import AuditEvent
from agents.models import Agent
from agents.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def page_client(user) -> Client:
    """A browser signed in as `user` (a LogFleet session, as the sign-in page starts one)."""
    store = SessionStore()
    store[SESSION_KEY] = account_services.session_start(user=user).session_id
    store.create()
    client = Client(HTTP_ACCEPT="text/html")
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    return client


@pytest.fixture
def member(member_user):
    return page_client(member_user)


@pytest.fixture
def viewer(viewer_user):
    return page_client(viewer_user)


def html(response) -> str:
    return response.content.decode()


def rows(page: str) -> list[str]:
    """The agents' names in the table, in order."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<a href="/agents/[0-9a-f-]{36}">([^<]+)</a>', body)


def beat(agent, *, status="online", ago=0):
    agent.reported_status = status
    agent.last_heartbeat_at = timezone.now() - timedelta(seconds=ago)
    agent.save(update_fields=["reported_status", "last_heartbeat_at"])
    return agent


@pytest.fixture
def fleet(org):
    """Four agents of every status, with labels, hostnames and versions."""
    return {
        "web-1": beat(
            AgentFactory(
                organization=org,
                name="web-1",
                hostname="web-1.eu.internal",
                version="1.4.2",
                labels={"env": "prod", "region": "eu"},
            ),
            ago=10,
        ),
        "web-2": beat(
            AgentFactory(
                organization=org, name="web-2", hostname="web-2.us.internal", labels={"env": "prod", "region": "us"}
            ),
            status="error",
            ago=20,
        ),
        "db-1": beat(
            AgentFactory(
                organization=org, name="db-1", hostname="db.eu.internal", labels={"env": "staging", "region": "eu"}
            ),
            ago=3600,
        ),
        "cache-1": AgentFactory(organization=org, name="cache-1", labels={}),
    }


# --- the agents table ------------------------------------------------------------------------


def test_the_table_shows_each_agent_with_its_status_word_labels_version_heartbeat_and_config(viewer, fleet):
    r = viewer.get("/agents")
    page = html(r)
    assert r.status_code == 200, page
    assert "<caption>Agents</caption>" in page
    assert rows(page) == ["cache-1", "db-1", "web-1", "web-2"]
    web1 = page.split(f'href="/agents/{fleet["web-1"].pk}"', 1)[0].rsplit("<tr>", 1)[1]
    assert '<span class="status online">online</span>' in web1
    assert '<span class="status error">error</span>' in page and '<span class="status offline">offline</span>' in page
    row = page.split(f'href="/agents/{fleet["web-1"].pk}"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="label">env:prod</span>' in row and '<span class="label">region:eu</span>' in row
    assert "1.4.2" in row and re.search(r">1\d s ago<", row) and "web-1.eu.internal" in row
    assert '<span class="status unknown">unknown</span>' in row
    assert "never" in page.split(f'href="/agents/{fleet["cache-1"].pk}"', 1)[1].split("</tr>", 1)[0]


def test_anonymous_visitors_sign_in_first_and_an_htmx_refresh_is_told_where(fleet):
    r = Client().get("/agents")
    assert (r.status_code, r["Location"]) == (302, "/login?next=%2Fagents")
    r = Client().get("/agents", HTTP_HX_REQUEST="true")
    assert (r.status_code, r["HX-Redirect"]) == (401, "/login?next=%2Fagents")


def test_filters_by_status_labels_and_search_like_the_api(viewer, fleet):
    assert rows(html(viewer.get("/agents?status=offline"))) == ["cache-1", "db-1"]
    assert rows(html(viewer.get("/agents?status=error"))) == ["web-2"]
    assert rows(html(viewer.get("/agents?label=env:prod"))) == ["web-1", "web-2"]
    assert rows(html(viewer.get("/agents?label=env:prod&label=region:eu"))) == ["web-1"]
    assert rows(html(viewer.get("/agents?search=EU.internal"))) == ["db-1", "web-1"]  # hostname
    assert rows(html(viewer.get("/agents?search=web&status=online"))) == ["web-1"]
    # The filter form's blank fields mean "any"; the active filters are shown and kept.
    page = html(viewer.get("/agents?search=&status=&label=&label=env:prod&label=region:eu"))
    assert rows(page) == ["web-1"]
    assert '<input type="hidden" name="label" value="env:prod">' in page
    assert '<option value="online" ' in page and 'aria-label="Remove the label filter env:prod"' in page
    remove = re.search(r'<a href="([^"]+)" aria-label="Remove the label filter env:prod"', page).group(1)
    assert rows(html(viewer.get("/agents" + remove.replace("&amp;", "&")))) == ["db-1", "web-1"]


def test_a_bad_filter_is_shown_beside_its_field(viewer, fleet):
    r = viewer.get("/agents?status=sleeping&search=web")
    assert r.status_code == 400
    page = html(r)
    assert 'id="f-status-error"' in page and rows(page) == [] and 'value="web"' in page
    assert "hx-get" not in page  # nothing to refresh until the filters are right
    r = viewer.get("/agents?label=nocolon")
    assert r.status_code == 400 and "each label filter must be key:value" in html(r)
    assert viewer.get("/agents?ordering=size").status_code == 400
    assert viewer.get("/agents?page=0").status_code == 400


def test_column_headers_sort_by_the_apis_orderings_keeping_the_filters(viewer, fleet):
    page = html(viewer.get("/agents?label=env:prod"))
    header = '<th scope="col" class="sortable" aria-sort="ascending">'
    assert header + '<a href="?label=env%3Aprod&amp;ordering=-name">Name</a>' in page
    assert '<a href="?label=env%3Aprod&amp;ordering=-last_heartbeat_at">Last heartbeat</a>' in page
    assert rows(html(viewer.get("/agents?ordering=-name"))) == ["web-2", "web-1", "db-1", "cache-1"]
    # Most recent first; the never-seen agent last either way, as in the API.
    assert rows(html(viewer.get("/agents?ordering=-last_heartbeat_at"))) == ["web-1", "web-2", "db-1", "cache-1"]
    page = html(viewer.get("/agents?ordering=last_heartbeat_at&page=2"))
    assert '<a href="?ordering=-last_heartbeat_at">Last heartbeat</a>' in page  # back to page 1
    assert rows(html(viewer.get("/agents?ordering=last_heartbeat_at"))) == ["db-1", "web-2", "web-1", "cache-1"]
    assert rows(html(viewer.get("/agents?ordering=-created_at")))[0] == "cache-1"


def test_the_table_is_paged_on_the_server_fifty_a_page_and_page_links_keep_the_filters(viewer, org):
    for i in range(120):
        AgentFactory(organization=org, name=f"node-{i:03d}", labels={"env": "prod"})
    AgentFactory(organization=org, name="other", labels={"env": "dev"})
    page = html(viewer.get("/agents?label=env:prod&ordering=-name"))
    assert len(rows(page)) == 50 and rows(page)[0] == "node-119"
    assert "1\u201350 of 120" in page and "Page 1 of 3" in page
    assert '<a href="?label=env%3Aprod&amp;ordering=-name&amp;page=2" rel="next">Next</a>' in page
    page = html(viewer.get("/agents?label=env:prod&ordering=-name&page=3"))
    assert rows(page) == [f"node-{i:03d}" for i in range(19, -1, -1)]
    assert "101\u2013120 of 120" in page and 'rel="next"' not in page
    assert '<a href="?label=env%3Aprod&amp;ordering=-name&amp;page=2" rel="prev">Previous</a>' in page
    r = viewer.get("/agents?page=9")  # past the end: empty, as the API answers
    assert r.status_code == 200 and rows(html(r)) == [] and "Back to the first page" in html(r)


def test_an_htmx_refresh_gets_the_table_alone_polling_the_same_url(viewer, fleet):
    url = "/agents?label=env:prod&ordering=-name&page=1"
    r = viewer.get(url, HTTP_HX_REQUEST="true")
    fragment = html(r)
    assert r.status_code == 200 and "HX-Request" in r["Vary"]
    assert "<html" not in fragment and "<form" not in fragment and "comment" not in fragment
    assert rows(fragment) == ["web-2", "web-1"]
    assert 'id="agents-table"' in fragment and 'hx-swap="outerHTML"' in fragment
    assert re.search(r'hx-get="([^"]+)" hx-trigger="every \d+s"', fragment).group(1).replace("&amp;", "&") == url
    # What the fragment shows follows the fleet: web-2's next heartbeat says online.
    beat(fleet["web-2"])
    assert (
        '<span class="status online">online</span>'
        in html(viewer.get(url, HTTP_HX_REQUEST="true")).split(f'href="/agents/{fleet["web-1"].pk}"')[0]
    )
    r = viewer.get(url)
    assert "<html" in html(r) and 'id="agents-table"' in html(r) and "HX-Request" in r["Vary"]


def test_a_table_refreshing_itself_never_meets_a_429(viewer, fleet, settings):
    settings.RATE_LIMITS = {group: "2/h" for group in settings.RATE_LIMITS}
    for _ in range(12):
        assert viewer.get("/agents", HTTP_HX_REQUEST="true").status_code == 200
        assert viewer.get(f"/agents/{fleet['web-1'].pk}").status_code == 200


def test_the_table_of_200_agents_costs_a_few_queries(viewer, org, django_assert_max_num_queries):
    now = timezone.now()
    Agent.objects.bulk_create(
        Agent(
            organization=org,
            name=f"edge-{i:03d}",
            labels={"region": "eu", "rack": str(i % 7)},
            reported_status="online",
            last_heartbeat_at=now,
            version="1.0",
        )
        for i in range(200)
    )
    # Django's session, the LogFleet session with its user and organization, the count, the page.
    with django_assert_max_num_queries(5):
        r = viewer.get("/agents?label=region:eu")
    assert r.status_code == 200 and len(rows(html(r))) == 50
    with django_assert_max_num_queries(5):
        assert viewer.get("/agents?page=4", HTTP_HX_REQUEST="true").status_code == 200


# --- one agent -------------------------------------------------------------------------------


@pytest.fixture
def agent(org):
    agent = AgentFactory(
        organization=org,
        name="edge-7",
        hostname="edge-7.fleet.internal",
        os="Debian 12",
        version="1.4.2",
        ip_address="10.0.0.7",
        labels={"env": "prod", "region": "eu"},
        system_metrics={"cpu_percent": 12.5, "memory_percent": 40.125, "uptime_seconds": 86400},
        source_states=[
            {"name": "nginx", "path": "/var/log/nginx/access.log", "state": "reading", "lines": 1200, "bytes": 4096},
            {
                "name": "app",
                "path": "/var/log/app.log",
                "state": "permission_denied",
                "lines": 0,
                "bytes": 0,
                "error": "EACCES",
            },
        ],
        config_report_state="failed",
        config_errors=[{"config_id": "cfg-1", "metric": "http_requests_total", "message": "bad pattern"}],
    )
    agent.config_report_hash = agent.config_hash  # it failed to apply what it should run
    agent.save(update_fields=["config_report_hash"])
    return beat(agent, ago=5)


def test_the_agent_page_shows_its_host_metrics_sources_config_and_the_metrics_panel(viewer, agent):
    r = viewer.get(f"/agents/{agent.pk}")
    page = html(r)
    assert r.status_code == 200, page
    assert "<h1>edge-7 <span" in page and '<span class="status online">online</span>' in page
    for fact in ("edge-7.fleet.internal", "10.0.0.7", "Debian 12", "1.4.2"):
        assert fact in page, fact
    assert re.search(r"<dt>Last heartbeat</dt><dd><time [^>]+>\d s ago</time>", page)
    assert "cpu_percent" in page and ">12.5<" in page and ">40.12<" in page and ">86,400<" in page
    assert "/var/log/nginx/access.log" in page and ">permission_denied<" in page and "EACCES" in page
    assert '<span class="label">env:prod</span>' in page
    assert '<span class="status failed">failed</span>' in page
    assert "Apply errors" in page and "bad pattern" in page and "http_requests_total" in page
    assert "&quot;heartbeat_interval_seconds&quot;: 30" in page and "Version</dt><dd>1 " in page
    assert (
        '<section aria-labelledby="charts-h"><h2 id="charts-h">Metrics</h2><div hx-get="/metrics/panel?agent_id='
        f'{agent.pk}" hx-trigger="load" hx-swap="innerHTML">Loading charts…</div></section>'
    ) in page


def test_a_viewer_sees_no_control_that_writes(viewer, agent):
    page = html(viewer.get(f"/agents/{agent.pk}"))
    for control in (
        "Save labels",
        "Save configuration",
        "Delete agent",
        "Start live tail",
        "<textarea",
        'action="/live"',
    ):
        assert control not in page, control


def test_a_member_gets_the_forms_and_the_live_tail_form_posts_to_live(member, agent):
    page = html(member.get(f"/agents/{agent.pk}"))
    assert "Save labels" in page and "Save configuration" in page and "Delete agent" in page
    live = page.split('<form method="post" action="/live"', 1)[1].split("</form>", 1)[0]
    assert f'<input type="hidden" name="agent_id" value="{agent.pk}">' in live
    assert 'name="level"' in live and 'name="source"' in live and 'name="pattern"' in live
    assert all(f'<option value="{level}">' in live for level in ("DEBUG", "INFO", "WARN", "ERROR"))
    assert '<button type="submit" class="primary">Start live tail</button>' in live
    assert 'name="csrfmiddlewaretoken"' in live


def test_a_member_edits_the_labels_audited_like_the_api(member, agent, member_user):
    r = member.post(f"/agents/{agent.pk}/labels", {"labels": "env: staging\n\nrole:web\nurl:http://x:80\n"})
    assert (r.status_code, r["Location"]) == (302, f"/agents/{agent.pk}")
    agent.refresh_from_db()
    assert agent.labels == {"env": "staging", "role": "web", "url": "http://x:80"}
    event = AuditEvent.objects.get(action="agent.updated")
    assert (event.actor_id, event.metadata) == (member_user.pk, {"fields": ["labels"]})
    assert "Labels saved." in html(member.get(r["Location"]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("env=prod", "line 1: write each label as key:value"),
        ("a:1\na:2", "line 2: the key &#x27;a&#x27; is there twice"),
        ("9bad:x", "must match"),
        ("k:" + "v" * 257, "at most 256 characters"),
    ],
)
def test_bad_labels_are_refused_beside_the_field_and_nothing_changes(member, agent, text, message):
    r = member.post(f"/agents/{agent.pk}/labels", {"labels": text})
    page = html(r)
    assert r.status_code == 400, page
    assert 'id="f-labels-error"' in page and message in page
    assert f">{text}</textarea>" in page  # what was typed is kept
    agent.refresh_from_db()
    assert agent.labels == {"env": "prod", "region": "eu"}
    assert not AuditEvent.objects.filter(action="agent.updated").exists()


def config_text(**overrides) -> str:
    import json

    config = {"log_sources": [{"name": "nginx", "path": "/var/log/nginx/access.log", "format": "text"}]}
    return json.dumps({**config, **overrides})


def test_a_member_saves_the_config_with_its_version(member, agent):
    r = member.post(f"/agents/{agent.pk}/config", {"version": "1", "config": config_text(retention_hours=24)})
    assert (r.status_code, r["Location"]) == (302, f"/agents/{agent.pk}")
    agent.refresh_from_db()
    assert agent.config_version == 2 and agent.config["retention_hours"] == 24
    assert agent.config["heartbeat_interval_seconds"] == 30  # defaults filled in, as the API does
    page = html(member.get(r["Location"]))
    assert "Configuration saved as version 2." in page and 'name="version" value="2"' in page
    assert AuditEvent.objects.filter(action="agent_config.updated").count() == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"retention_hours": NaN}', "not valid JSON"),
        (config_text(retention_hours=0), "retention_hours: Ensure this value is greater than or equal to 1."),
        ('{"log_sources": [{"name": "a", "path": "relative"}]}', "log_sources.0.path: must be an absolute path"),
        ('{"colour": "blue"}', "colour: unknown key"),
    ],
)
def test_a_bad_config_is_refused_beside_the_field_and_kept(member, agent, text, message):
    r = member.post(f"/agents/{agent.pk}/config", {"version": "1", "config": text})
    page = html(r)
    assert r.status_code == 400, page
    assert 'id="f-config-error"' in page and message in page
    agent.refresh_from_db()
    assert agent.config_version == 1 and agent.config["retention_hours"] == 168


def test_a_version_conflict_overwrites_nothing_and_shows_the_current_config(member, agent, admin_user):
    from agents import services

    services.agent_config_update(
        agent=agent, version=1, config={**agent.config, "retention_hours": 48}, actor=admin_user
    )
    mine = config_text(retention_hours=12)
    r = member.post(f"/agents/{agent.pk}/config", {"version": "1", "config": mine})
    page = html(r)
    assert r.status_code == 409, page
    assert "someone saved version 2 while you were editing version 1" in page and "nothing was overwritten" in page
    assert "Current configuration (version 2)" in page and "&quot;retention_hours&quot;: 48" in page
    assert "&quot;retention_hours&quot;: 12" in page  # my text is kept in the textarea
    assert 'name="version" value="2"' in page  # saving again is a choice made having seen version 2
    agent.refresh_from_db()
    assert (agent.config_version, agent.config["retention_hours"]) == (2, 48)
    assert AuditEvent.objects.filter(action="agent_config.updated").count() == 1
    # A missing version is refused like the API refuses it.
    assert member.post(f"/agents/{agent.pk}/config", {"config": mine}).status_code == 400


def test_a_viewer_is_refused_every_write_and_nothing_changes(viewer, agent):
    for path, data in (
        ("labels", {"labels": "env:dev"}),
        ("config", {"version": "1", "config": config_text()}),
        ("delete", {}),
    ):
        r = viewer.post(f"/agents/{agent.pk}/{path}", data)
        assert r.status_code == 403 and "Not allowed" in html(r), path
    agent.refresh_from_db()
    assert (agent.labels, agent.config_version) == ({"env": "prod", "region": "eu"}, 1)
    assert not AuditEvent.objects.filter(target_id=str(agent.pk)).exists()


def test_a_member_deletes_an_agent(member, agent):
    r = member.post(f"/agents/{agent.pk}/delete")
    assert (r.status_code, r["Location"]) == (302, "/agents")
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert "Agent edge-7 deleted." in html(member.get("/agents"))
    assert AuditEvent.objects.filter(action="agent.deleted").count() == 1


def test_another_organizations_agent_is_a_404_page_for_every_verb(member, other_org):
    theirs = AgentFactory(organization=other_org, labels={"env": "prod"})
    for method, path in (
        ("get", ""),
        ("post", "/labels"),
        ("post", "/config"),
        ("post", "/delete"),
    ):
        r = getattr(member, method)(f"/agents/{theirs.pk}{path}", {"labels": "a:b", "version": "1", "config": "{}"})
        assert r.status_code == 404 and "Page not found" in html(r), (method, path)
        assert r["Content-Type"].startswith("text/html")
    assert theirs.name not in html(member.get("/agents"))
    theirs.refresh_from_db()
    assert (theirs.labels, theirs.config_version) == ({"env": "prod"}, 1)
    assert member.get("/agents/not-a-uuid").status_code == 404
