"""The streaming pages over HTTP (UI.md): start a live tail from the agent page's form, the sessions
table, the live tail page and its Stop, for each role."""

import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, Role
from accounts.tests.factories import UserFactory
from agents.tests.factories import AgentFactory
from logfleet.testing import browser_session_cookie
from streaming.models import StreamSession

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    """A signed-in browser (a LogFleet session in Django's session cookie)."""
    client = Client(HTTP_ACCEPT="text/html")
    client.cookies[settings.SESSION_COOKIE_NAME] = browser_session_cookie(user, "http://testserver")["value"]
    return client


def make_session(agent, *, user=None, minutes_ago=0, timeout=300, **fields):
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return StreamSession.objects.create(
        organization=agent.organization,
        agent=agent,
        agent_ref=agent.pk,
        created_by=user,
        created_by_ref=user.pk if user else None,
        timeout_seconds=timeout,
        started_at=started,
        expires_at=started + timedelta(seconds=timeout),
        viewers_seen_at=timezone.now(),
        **fields,
    )


def tail_config(response) -> dict:
    found = re.search(r'<script id="tail-config" type="application/json">(.*?)</script>', response.content.decode())
    assert found, response.content.decode()[:2000]
    return json.loads(found.group(1))


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# --- starting ---------------------------------------------------------------------------------


def test_a_member_starts_a_live_tail_from_the_agent_page_form(member_user, online_agent):
    client = browser(member_user)
    r = client.post(
        "/live",
        {"agent_id": str(online_agent.pk), "level": "error, WARN", "source": "nginx", "pattern": " timeout "},
    )
    session = StreamSession.objects.get()
    assert (r.status_code, r["Location"]) == (302, f"/live/{session.pk}")
    assert session.filters == {"level": ["error", "WARN"], "source": "nginx", "pattern": " timeout "}
    assert (session.created_by, session.timeout_seconds, session.agent_ref) == (member_user, 300, online_agent.pk)
    assert AuditEvent.objects.filter(action="stream.started", target_id=str(session.pk)).count() == 1

    page = client.get(r["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert '<ol id="tail" class="tail" aria-label="Live log lines"' in html
    for button in (">Pause<", ">Resume<", ">Stop<"):
        assert button in html, button
    config = tail_config(page)
    # The socket is authenticated by the session cookie: no token anywhere in the page.
    assert config["socket_path"] == f"/api/v1/stream/ws/{session.pk}"
    assert config["open"] and config["status"] == "pending" and 290 <= config["seconds_left"] <= 300
    assert config["max_lines"] == 2000
    assert "token" not in html.lower().replace("csrfmiddlewaretoken", "").replace("x-csrftoken", "")


def test_empty_filters_and_optional_fields_are_left_out(member_user, online_agent):
    r = browser(member_user).post(
        "/live",
        {
            "agent_id": str(online_agent.pk),
            "level": ["", "info"],
            "source": "  ",
            "pattern": "",
            "timeout_seconds": "60",
        },
    )
    assert r.status_code == 302
    session = StreamSession.objects.get()
    assert (session.filters, session.timeout_seconds, session.filter_query) == ({"level": ["info"]}, 60, None)


def test_a_viewer_may_not_start_one_and_nothing_is_created(viewer_user, online_agent):
    r = browser(viewer_user).post("/live", {"agent_id": str(online_agent.pk)})
    assert r.status_code == 403 and "Not allowed" in r.content.decode()
    assert not StreamSession.objects.exists()


def test_an_offline_agent_is_refused_with_a_message_on_the_agent_page(member_user, org):
    agent = AgentFactory(organization=org)  # never sent a heartbeat
    client = browser(member_user)
    r = client.post("/live", {"agent_id": str(agent.pk)})
    assert (r.status_code, r["Location"]) == (302, f"/agents/{agent.pk}")
    said = "The live tail did not start. The agent is offline; it cannot stream until it is back"
    assert flashed(r) == [said]
    assert not StreamSession.objects.exists()
    assert said in client.get(r["Location"]).content.decode()  # shown on the agent page


def test_too_many_open_sessions_are_refused_with_a_message(member_user, online_agent, settings):
    settings.STREAM_MAX_ACTIVE_PER_AGENT = 1
    client = browser(member_user)
    assert client.post("/live", {"agent_id": str(online_agent.pk)}).status_code == 302
    r = client.post("/live", {"agent_id": str(online_agent.pk)})
    assert (r.status_code, r["Location"]) == (302, f"/agents/{online_agent.pk}")
    assert flashed(r) == [
        "The live tail did not start. This agent already has the maximum number of open stream sessions"
    ]
    assert StreamSession.objects.count() == 1


def test_a_bad_filter_is_named_in_the_message(member_user, online_agent):
    r = browser(member_user).post(
        "/live", {"agent_id": str(online_agent.pk), "level": "x" * 40, "timeout_seconds": "0"}
    )
    assert (r.status_code, r["Location"]) == (302, f"/agents/{online_agent.pk}")
    (message,) = flashed(r)
    assert "Timeout: Ensure this value is greater than or equal to 1." in message
    assert "Level: Ensure this field has no more than 32 characters." in message
    assert not StreamSession.objects.exists()


def test_an_unknown_or_foreign_agent_is_not_found_and_a_malformed_id_is_refused(member_user, other_org):
    client = browser(member_user)
    foreign = AgentFactory(organization=other_org)
    r = client.post("/live", {"agent_id": str(foreign.pk)})
    assert r.status_code == 404 and "no such agent" in r.content.decode()
    assert client.post("/live", {"agent_id": "not-an-id"}).status_code == 400
    assert client.post("/live", {}).status_code == 400
    assert not StreamSession.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(db):
    for path in ("/live", f"/live/{'0' * 8}-0000-4000-8000-{'0' * 12}"):
        r = Client().get(path)
        assert r.status_code == 302 and r["Location"].startswith("/login?next="), path
    r = Client().post("/live", {"agent_id": "x"})
    assert r.status_code == 302 and r["Location"] == "/login?next=%2Flive"


# --- the sessions table -------------------------------------------------------------------------


def test_the_sessions_table_lists_the_organizations_sessions_newest_first(
    viewer_user, member_user, online_agent, other_org
):
    old = make_session(online_agent, user=member_user, minutes_ago=30, timeout=60, lines_sent=12, lines_dropped=3)
    new = make_session(online_agent, user=member_user, filters={"level": ["error"], "pattern": "boom"})
    stopped = make_session(online_agent, minutes_ago=10, status="stopped", end_reason="stopped")
    stopped.stopped_at = stopped.started_at + timedelta(seconds=5)
    stopped.save()
    foreign = make_session(AgentFactory(organization=other_org))

    r = browser(viewer_user).get("/live")
    html = r.content.decode()
    assert r.status_code == 200
    assert "<caption>Stream sessions</caption>" in html
    positions = [html.index(f'href="/live/{session.pk}"') for session in (new, stopped, old)]
    assert positions == sorted(positions)
    assert f"/live/{foreign.pk}" not in html
    assert f'<a href="/agents/{online_agent.pk}">{online_agent.name}</a>' in html
    assert "level: error" in html and "pattern: “boom”" in html
    # Expired by its timeout though stored as open: shown as it is (a read never writes).
    assert '<span class="status expired">expired</span>' in html and "Its time ran out" in html
    assert "Stopped by a person" in html
    compact = re.sub(r">\s+<", "><", html)
    assert '<td class="num" data-label="Lines sent">12</td><td class="num" data-label="dropped">3</td>' in compact
    assert member_user.name in html


def test_the_sessions_table_filters_pages_and_refuses_bad_values(member_user, online_agent):
    for minutes in range(55):
        make_session(online_agent, minutes_ago=minutes + 100, timeout=60)
    live = make_session(online_agent)
    client = browser(member_user)
    first = client.get("/live").content.decode()
    assert "1\N{EN DASH}50 of 56 sessions" in first and "Page 1 of 2" in first and 'href="?page=2"' in first
    assert "51\N{EN DASH}56 of 56 sessions" in client.get("/live?page=2").content.decode()
    past = client.get("/live?page=9")
    assert past.status_code == 200 and "Nothing on this page" in past.content.decode()
    only_open = client.get("/live?status=pending").content.decode()
    assert f"/live/{live.pk}" in only_open and "1\N{EN DASH}1 of 1 session" in only_open
    other_agent = AgentFactory(organization=online_agent.organization)
    assert "No session matches this filter" in client.get(f"/live?agent_id={other_agent.pk}").content.decode()
    bad = client.get("/live?status=bar")
    assert bad.status_code == 400 and "is not a valid choice" in bad.content.decode()
    assert client.get("/live?page=0").status_code == 400
    assert client.get("/live?page=x").status_code == 400


def test_the_sessions_table_reads_a_page_in_a_fixed_number_of_queries(
    member_user, online_agent, django_assert_max_num_queries
):
    users = [UserFactory(organization=online_agent.organization) for _ in range(5)]
    agents = [AgentFactory(organization=online_agent.organization) for _ in range(5)]
    for index in range(60):
        make_session(agents[index % 5], user=users[index % 5], minutes_ago=index + 10)
    client = browser(member_user)
    with django_assert_max_num_queries(4):  # the two sign-in reads, the count, the page
        r = client.get("/live")
    assert r.status_code == 200 and r.content.decode().count('href="/live/') == 50


# --- one session ------------------------------------------------------------------------------


def test_another_organizations_session_is_not_found(member_user, other_org):
    foreign = make_session(AgentFactory(organization=other_org))
    client = browser(member_user)
    r = client.get(f"/live/{foreign.pk}")
    assert r.status_code == 404 and "Page not found" in r.content.decode()
    assert client.post(f"/live/{foreign.pk}/stop").status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == "pending"
    assert client.get("/live/not-a-uuid").status_code == 404


def test_a_member_stops_a_session_and_the_page_says_how_it_ended(member_user, online_agent):
    session = make_session(online_agent, user=member_user)
    client = browser(member_user)
    r = client.post(f"/live/{session.pk}/stop")
    assert (r.status_code, r["Location"]) == (302, f"/live/{session.pk}")
    session.refresh_from_db()
    assert (session.status, session.end_reason) == ("stopped", "stopped")
    assert AuditEvent.objects.filter(action="stream.ended", target_id=str(session.pk)).count() == 1
    page = client.get(f"/live/{session.pk}")
    html = page.content.decode()
    assert "The live tail is stopped." in html and "This session has ended: Stopped by a person" in html
    assert ">Stop<" not in html and not tail_config(page)["open"]
    # Repeating it is harmless, as with the API; htmx (the page's own button) gets 204.
    assert client.post(f"/live/{session.pk}/stop", HTTP_HX_REQUEST="true").status_code == 204
    assert AuditEvent.objects.filter(action="stream.ended").count() == 1


def test_a_viewer_watches_without_a_stop_button_and_cannot_stop(viewer_user, online_agent):
    session = make_session(online_agent)
    client = browser(viewer_user)
    html = client.get(f"/live/{session.pk}").content.decode()
    assert 'aria-label="Live log lines"' in html and ">Pause<" in html and ">Resume<" in html
    assert ">Stop<" not in html and "/stop" not in html
    r = client.post(f"/live/{session.pk}/stop")
    assert r.status_code == 403 and "Not allowed" in r.content.decode()
    session.refresh_from_db()
    assert session.status == "pending" and not AuditEvent.objects.filter(action="stream.ended").exists()


def test_a_session_over_by_its_timeout_is_shown_ended(member_user, online_agent):
    session = make_session(online_agent, minutes_ago=10, timeout=60)
    page = browser(member_user).get(f"/live/{session.pk}")
    html = page.content.decode()
    assert "This session has ended: Its time ran out" in html and '<span class="status expired"' in html
    assert ">Stop<" not in html
    assert tail_config(page)["open"] is False


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_every_role_reads_both_pages(role, org, online_agent):
    session = make_session(online_agent)
    client = browser(UserFactory(organization=org, role=role))
    assert client.get("/live").status_code == 200
    assert client.get(f"/live/{session.pk}").status_code == 200
