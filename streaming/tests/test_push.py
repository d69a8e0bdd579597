import pytest
from rest_framework.test import APIClient

from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error
from streaming.models import StreamSession

pytestmark = pytest.mark.django_db


def line(message="GET /index 200", level="INFO", source="nginx", **extra):
    return {
        "timestamp": "2024-01-15T10:30:00Z",
        "level": level,
        "message": message,
        "source": source,
        "metadata": {},
        **extra,
    }


def test_push_counts_and_activates_the_session(start, push_lines, online_agent, member_client):
    session_id = start(online_agent).json()["session_id"]
    r = push_lines(online_agent, session_id, [line("one"), line("two")])
    assert r.status_code == 202, r.json()
    assert r.json() == {"accepted": 2, "filtered": 0, "dropped": 0, "session_status": "active"}
    body = member_client.get(f"/api/v1/stream/sessions/{session_id}").json()
    assert body["status"] == "active" and body["lines_sent"] == 2 and body["bytes_sent"] == 6


def test_the_server_enforces_the_filters_again(start, push_lines, online_agent):
    session_id = start(
        online_agent, filters={"level": ["error", "WARN"], "source": "nginx", "pattern": "timeout"}
    ).json()["session_id"]
    lines = [
        line("upstream timeout", level="ERROR"),  # kept: level is case-insensitive
        line("upstream timeout", level="warn"),  # kept
        line("upstream timeout", level="INFO"),  # level
        line("upstream timeout", level="ERROR", source="app"),  # source is exact
        line("upstream TIMEOUT", level="ERROR"),  # pattern is a case-sensitive substring
        line("a (timeout.*) b", level="ERROR"),  # not a regex: the substring is there
    ]
    r = push_lines(online_agent, session_id, lines)
    assert r.json() == {"accepted": 3, "filtered": 3, "dropped": 0, "session_status": "active"}


def test_long_messages_are_cut_and_flagged(start, push_lines, online_agent):
    session_id = start(online_agent).json()["session_id"]
    r = push_lines(online_agent, session_id, [line("é" * 40_000)])
    assert r.status_code == 202 and r.json()["accepted"] == 1
    assert StreamSession.objects.get(pk=session_id).bytes_sent <= 65_536


def test_the_budget_drops_and_counts_lines(start, push_lines, online_agent, settings, member_client):
    settings.STREAM_MAX_LINES_PER_SECOND = 5  # the budget, reached with a handful of lines
    session_id = start(online_agent).json()["session_id"]
    r = push_lines(online_agent, session_id, [line(str(i)) for i in range(8)])
    assert r.json()["accepted"] + r.json()["dropped"] == 8 and r.json()["dropped"] >= 3
    body = member_client.get(f"/api/v1/stream/sessions/{session_id}").json()
    assert body["lines_dropped"] == r.json()["dropped"] and body["lines_sent"] == r.json()["accepted"]


def test_the_byte_budget_drops_and_counts_long_lines_below_the_line_budget(
    start, push_lines, online_agent, settings, member_client
):
    # A budget that four lines of 10 kB reach; the line budget (500 a second) is far away.
    settings.STREAM_MAX_BYTES_PER_SECOND = 50_000
    session_id = start(online_agent).json()["session_id"]
    r = push_lines(online_agent, session_id, [line("x" * 10_000) for _ in range(10)])
    assert r.status_code == 202, r.json()
    assert (r.json()["accepted"], r.json()["dropped"]) == (4, 6)
    body = member_client.get(f"/api/v1/stream/sessions/{session_id}").json()
    assert (body["lines_sent"], body["lines_dropped"], body["bytes_sent"]) == (4, 6, 40_000)


def test_a_session_that_is_over_answers_410(start, push_lines, online_agent, member_client):
    session_id = start(online_agent).json()["session_id"]
    member_client.post("/api/v1/stream/stop", {"session_id": session_id}, format="json")
    assert_error(push_lines(online_agent, session_id, [line()]), 410, "gone")


def test_unknown_or_another_agents_session_is_404(start, push_lines, online_agent, org):
    session_id = start(online_agent).json()["session_id"]
    other = AgentFactory(organization=org)
    assert_error(push_lines(other, session_id, [line()]), 404)
    assert_error(push_lines(online_agent, "00000000-0000-4000-8000-000000000000", [line()]), 404)
    assert "session_id" in assert_error(push_lines(online_agent, "nope", [line()]), 400)["details"]


@pytest.mark.parametrize("logs", [[line()] * 1001, "x", [{"level": "INFO"}], [line(metadata=[1])]])
def test_bad_lines_are_400(start, push_lines, online_agent, logs):
    session_id = start(online_agent).json()["session_id"]
    assert "logs" in assert_error(push_lines(online_agent, session_id, logs), 400)["details"]
    assert StreamSession.objects.get(pk=session_id).lines_sent == 0


def test_push_needs_the_permission(start, push_lines, online_agent, org):
    session_id = start(online_agent).json()["session_id"]
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(org, permissions=["edge:metrics"])[1])
    assert_error(push_lines(online_agent, session_id, [line()], client=client), 403)
