"""A stream session nobody watches ends by itself (API.md section 8, STREAM_IDLE_SECONDS)."""

import pytest
from django.core.cache import cache

from accounts.models import AuditEvent
from logfleet.testing import assert_error
from streaming.models import StreamSession

pytestmark = pytest.mark.django_db

IDLE = 60  # STREAM_IDLE_SECONDS's default


def line(message="hello"):
    return {"timestamp": "2024-01-15T10:30:00Z", "level": "INFO", "message": message, "source": "app"}


def test_a_session_nobody_watches_ends_idle_and_frees_its_place(start, online_agent, member_client, settings, clock):
    settings.STREAM_MAX_ACTIVE_PER_AGENT = 1  # one place: the idle session must give it back
    first = start(online_agent).json()["session_id"]
    assert_error(start(online_agent), 409, "conflict")
    clock.advance(IDLE + 1)
    assert member_client.get(f"/api/v1/stream/sessions/{first}").json()["status"] == "stopped"
    assert start(online_agent).status_code == 201
    ended = StreamSession.objects.get(pk=first)
    assert (ended.status, ended.end_reason) == ("stopped", "idle")
    assert AuditEvent.objects.filter(action="stream.ended", metadata__reason="idle").count() == 1


def test_an_agent_pushing_to_an_idle_session_is_told_it_is_over(start, online_agent, push_lines, clock):
    session_id = start(online_agent).json()["session_id"]
    assert push_lines(online_agent, session_id, [line()]).status_code == 202
    clock.advance(IDLE + 1)
    assert_error(push_lines(online_agent, session_id, [line()]), 410, "gone")
    assert StreamSession.objects.get(pk=session_id).end_reason == "idle"


def test_the_heartbeat_tells_the_agent_to_stop_an_idle_session(start, online_agent, agent_client, clock):
    session_id = start(online_agent).json()["session_id"]
    url = f"/api/v1/edge/agents/{online_agent.pk}/heartbeat"
    assert [s["action"] for s in agent_client.post(url, {"status": "online"}, format="json").json()["streams"]] == [
        "start"
    ]
    clock.advance(IDLE + 1)
    cache.clear()  # the cached instructions live 10 s of real time, which the test's clock does not move
    streams = agent_client.post(url, {"status": "online"}, format="json").json()["streams"]
    assert [(s["session_id"], s["action"]) for s in streams] == [(session_id, "stop")]


def test_a_session_watched_until_recently_is_not_idle(start, online_agent, member_client, clock):
    from streaming import services

    session_id = start(online_agent).json()["session_id"]
    clock.advance(IDLE - 5)
    services.session_watched(session_id=session_id)  # what a connected viewer does regularly
    clock.advance(IDLE - 5)
    assert member_client.get(f"/api/v1/stream/sessions/{session_id}").json()["status"] == "pending"
    clock.advance(10)
    assert member_client.get(f"/api/v1/stream/sessions/{session_id}").json()["status"] == "stopped"


def test_stopping_a_session_that_went_idle_keeps_its_idle_end(start, online_agent, member_client, clock):
    session_id = start(online_agent).json()["session_id"]
    clock.advance(IDLE + 1)
    listed = member_client.get("/api/v1/stream/sessions", {"status": "stopped"}).json()["items"]
    assert [(s["id"], s["end_reason"]) for s in listed] == [(session_id, "idle")]
    stopped = member_client.post("/api/v1/stream/stop", {"session_id": session_id}, format="json").json()
    assert (stopped["status"], stopped["session"]["end_reason"]) == ("stopped", "idle")
