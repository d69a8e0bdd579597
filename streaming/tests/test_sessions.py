from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Role
from agents.models import Agent
from agents.tests.factories import AgentFactory
from logfleet.testing import ResourceBattery, assert_error
from streaming.models import StreamSession
from streaming.tests.factories import StreamSessionFactory

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/stream/sessions"


def make_session(organization):
    return StreamSessionFactory(agent__organization=organization, timeout_seconds=60).pk


def test_stream_sessions_resource_battery(org, other_org, role_clients, online_agent, settings):
    # The battery sends dozens of stream requests per user in a second; the limit is tested on its own.
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "streaming": "1000/m"}
    ResourceBattery(
        list_url=SESSIONS,
        detail_url=lambda session_id: f"{SESSIONS}/{session_id}",
        make_in=make_session,
        writes=[
            ("post", "/api/v1/stream/start", {"agent_id": str(online_agent.pk)}),
            ("post", "/api/v1/stream/stop", {"session_id": str(online_agent.pk)}),
        ],
        forbidden_roles=(Role.VIEWER,),
    ).run(org=org, other_org=other_org, role_clients=role_clients)


def test_start_answers_both_published_shapes(start, online_agent, member_user):
    r = start(
        online_agent, timeout_seconds=120, filters={"level": ["ERROR"], "pattern": "timeout"}, filter_query="status:500"
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    session = body["session"]
    assert body["session_id"] == session["id"] and body["agent_id"] == str(online_agent.pk)
    assert body["status"] == session["status"] == "pending"
    assert body["websocket_url"] == session["websocket_url"] == f"ws://testserver/api/v1/stream/ws/{session['id']}"
    assert session["filters"] == {"level": ["ERROR"], "pattern": "timeout"} and session["filter_query"] == "status:500"
    assert session["timeout_seconds"] == 120 and session["created_by"] == str(member_user.pk)
    assert (session["lines_sent"], session["lines_dropped"], session["bytes_sent"]) == (0, 0, 0)
    assert session["end_reason"] is None and session["stopped_at"] is None
    stored = StreamSession.objects.get(pk=session["id"])
    assert stored.expires_at - stored.started_at == timedelta(seconds=120)
    event = AuditEvent.objects.get(action="stream.started")
    assert event.target_type == "stream_session" and event.target_id == session["id"]
    assert event.metadata["agent_id"] == str(online_agent.pk)


def test_websocket_url_follows_the_scheme_and_host(member_client, online_agent, settings):
    settings.ALLOWED_HOSTS = ["logs.example.com"]  # a deployment's host name
    r = member_client.post(
        "/api/v1/stream/start",
        {"agent_id": str(online_agent.pk)},
        format="json",
        HTTP_HOST="logs.example.com",
        secure=True,
    )
    assert r.status_code == 201, r.json()
    assert r.json()["websocket_url"] == f"wss://logs.example.com/api/v1/stream/ws/{r.json()['session_id']}"


def test_defaults_and_bounds(start, online_agent):
    body = start(online_agent).json()["session"]
    assert body["timeout_seconds"] == 300 and body["filters"] == {} and body["filter_query"] is None
    for bad in (0, 3601, "x"):
        assert "timeout_seconds" in assert_error(start(online_agent, timeout_seconds=bad), 400)["details"]
    assert_error(start(online_agent, filters={"colour": "red"}), 400)


def test_an_offline_agent_cannot_stream_but_one_in_error_can(start, org):
    never_seen = AgentFactory(organization=org)
    body = assert_error(start(never_seen), 409, "conflict")
    assert body["details"]["agent_status"] == "offline"
    failing = AgentFactory(organization=org, last_heartbeat_at=timezone.now(), reported_status="error")
    assert start(failing).status_code == 201


def test_unknown_and_foreign_agents(start, member_client, other_org):
    foreign = AgentFactory(organization=other_org, online=True)
    assert_error(start(foreign), 404, "not_found")
    assert (
        "agent_id"
        in assert_error(member_client.post("/api/v1/stream/start", {"agent_id": "x"}, format="json"), 400)["details"]
    )


def test_open_session_caps(start, org, online_agent, settings):
    # Small caps, reached with a few sessions.
    settings.STREAM_MAX_ACTIVE_PER_AGENT = 2
    settings.STREAM_MAX_ACTIVE_PER_ORG = 3
    assert start(online_agent).status_code == 201 and start(online_agent).status_code == 201
    assert_error(start(online_agent), 409, "conflict")
    other = AgentFactory(organization=org, online=True)
    assert start(other).status_code == 201
    assert_error(start(other), 409, "conflict")


def test_expired_sessions_do_not_count_against_the_caps(start, online_agent, settings, clock):
    settings.STREAM_MAX_ACTIVE_PER_AGENT = 1  # a cap of one: an expired session must not hold it
    assert start(online_agent, timeout_seconds=5).status_code == 201
    assert_error(start(online_agent), 409)
    clock.advance(6)
    Agent.objects.filter(pk=online_agent.pk).update(last_heartbeat_at=timezone.now())
    assert start(online_agent).status_code == 201


def test_stop_is_idempotent_and_records_the_session(start, member_client, online_agent):
    session_id = start(online_agent).json()["session_id"]
    first = member_client.post("/api/v1/stream/stop", {"session_id": session_id}, format="json")
    assert first.status_code == 200, first.json()
    assert first.json()["status"] == "stopped" and first.json()["session"]["end_reason"] == "stopped"
    again = member_client.post("/api/v1/stream/stop", {"session_id": session_id}, format="json")
    assert again.status_code == 200 and again.json()["session"]["stopped_at"] == first.json()["session"]["stopped_at"]
    ended = AuditEvent.objects.filter(action="stream.ended", target_id=session_id)
    assert ended.count() == 1 and ended.get().metadata["reason"] == "stopped"


def test_viewers_watch_but_do_not_start_or_stop(start, viewer_client, online_agent):
    session_id = start(online_agent).json()["session_id"]
    assert_error(start(online_agent, client=viewer_client), 403, "permission_denied")
    assert_error(viewer_client.post("/api/v1/stream/stop", {"session_id": session_id}, format="json"), 403)
    assert viewer_client.get(f"{SESSIONS}/{session_id}").status_code == 200


def test_a_session_expires_at_its_timeout(start, member_client, online_agent, clock):
    session_id = start(online_agent, timeout_seconds=10).json()["session_id"]
    clock.advance(11)
    body = member_client.get(f"{SESSIONS}/{session_id}").json()
    assert body["status"] == "expired" and body["end_reason"] == "timeout"
    assert body["stopped_at"] == body["expires_at"]
    expired = member_client.get(SESSIONS, {"status": "expired"}).json()["items"]
    assert [s["id"] for s in expired] == [session_id]
    assert member_client.get(SESSIONS, {"status": "pending"}).json()["total"] == 0
    # Reads do not write: the end is written (and audited) by the next write path.
    assert not AuditEvent.objects.filter(action="stream.ended", target_id=session_id).exists()
    assert member_client.post("/api/v1/stream/stop", {"session_id": session_id}, format="json").status_code == 200
    assert AuditEvent.objects.filter(action="stream.ended", target_id=session_id).count() == 1
    assert member_client.get(f"{SESSIONS}/{session_id}").json() == body


def test_list_filters(start, member_client, online_agent, org):
    first = start(online_agent).json()["session_id"]
    second = start(online_agent).json()["session_id"]
    member_client.post("/api/v1/stream/stop", {"session_id": first}, format="json")
    assert [s["id"] for s in member_client.get(SESSIONS).json()["items"]] == [second, first]
    assert [s["id"] for s in member_client.get(SESSIONS, {"status": "stopped"}).json()["items"]] == [first]
    assert [s["id"] for s in member_client.get(SESSIONS, {"status": "pending"}).json()["items"]] == [second]
    assert member_client.get(SESSIONS, {"agent_id": str(AgentFactory(organization=org).pk)}).json()["total"] == 0
    assert_error(member_client.get(SESSIONS, {"status": "bar"}), 400)


def test_deleting_the_agent_ends_its_sessions_which_stay_in_the_history(start, member_client, online_agent):
    session_id = start(online_agent).json()["session_id"]
    assert member_client.delete(f"/api/v1/agents/{online_agent.pk}").status_code == 204
    body = member_client.get(f"{SESSIONS}/{session_id}").json()
    assert body["status"] == "stopped" and body["end_reason"] == "agent_deleted"
    assert body["agent_id"] == str(online_agent.pk)


def test_the_heartbeat_tells_the_agent_to_start_and_stop(start, member_client, online_agent, agent_client):
    def beat():
        r = agent_client.post(f"/api/v1/edge/agents/{online_agent.pk}/heartbeat", {"status": "online"}, format="json")
        return r.json()["streams"]

    assert beat() == []
    session = start(online_agent, filters={"source": "nginx"}, filter_query="q").json()["session"]
    instructions = beat()
    assert instructions == [
        {
            "session_id": session["id"],
            "action": "start",
            "filters": {"source": "nginx"},
            "filter_query": "q",
            "expires_at": session["expires_at"],
        }
    ]
    assert beat() == instructions  # on every heartbeat while it is open
    member_client.post("/api/v1/stream/stop", {"session_id": session["id"]}, format="json")
    assert [(i["session_id"], i["action"]) for i in beat()] == [(session["id"], "stop")]


def test_dashboard_counts_open_sessions(start, member_client, online_agent):
    start(online_agent)
    assert member_client.get("/api/v1/dashboard/summary").json()["streams"] == {"active": 1}


def test_the_streaming_group_is_limited_per_user(member_client, viewer_client):
    for _ in range(10):
        assert member_client.get(SESSIONS)["X-RateLimit-Limit"] == "10"
    assert_error(member_client.post("/api/v1/stream/stop", {"session_id": "x"}, format="json"), 429, "rate_limited")
    assert viewer_client.get(SESSIONS).status_code == 200
