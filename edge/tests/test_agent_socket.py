"""Heartbeats and lines over the agent's socket (API.md section 6; the README's "The agent socket")."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from agents.models import Agent
from agents.tests.factories import AgentFactory
from apikeys.tests.factories import make_key
from logfleet import realtime
from streaming.tests.sockets import agent_socket, close_of, line, run

pytestmark = pytest.mark.django_db(transaction=True)

BEAT = {"type": "heartbeat", "status": "online", "version": "2.1.0", "metrics": {"cpu": 12.5}}


@pytest.fixture
def agent(org):
    return AgentFactory(organization=org, name="store-01")


@pytest.fixture
def key(org):
    return make_key(org)


@pytest.fixture
def start(member_client):
    def start_session(agent):
        return member_client.post("/api/v1/stream/start", {"agent_id": str(agent.pk)}, format="json")

    return start_session


def read(client, agent) -> dict:
    r = client.get(f"/api/v1/agents/{agent.pk}")
    assert r.status_code == 200, r.json()
    return r.json()


async def opened(agent, raw_key):
    ws = agent_socket(agent, raw_key)
    connected, _ = await ws.connect()
    assert connected
    return ws


def test_a_heartbeat_frame_is_acknowledged_with_the_http_answer_and_written_at_once(agent, key, member_client, start):
    session_id = start(agent).json()
    assert session_id.get("error") == "conflict"  # offline: nothing to stream yet

    async def body():
        ws = await opened(agent, key[1])
        await ws.send_json_to({**BEAT, "ref": "beat-1"})
        ack = await ws.receive_json_from(timeout=3)
        assert set(ack) == {"type", "ref", "status", "server_time", "config_hash", "streams"}, ack
        assert (ack["type"], ack["ref"], ack["status"]) == ("heartbeat.ack", "beat-1", "acknowledged")
        assert ack["streams"] == []
        assert ack["server_time"].endswith("Z")
        # Committed before the ack: every reader sees it now.
        seen = await sync_to_async(read)(member_client, agent)
        assert (seen["status"], seen["version"], seen["system_metrics"]) == ("online", "2.1.0", {"cpu": 12.5})
        assert seen["connected"] is True and ack["config_hash"] == seen["config_hash"]

        # Now that it is online, a stream can start: the socket hears it, and the next ack lists it.
        started = (await sync_to_async(start)(agent)).json()
        assert (await ws.receive_json_from(timeout=3))["type"] == "stream.start"
        await ws.send_json_to({**BEAT, "ref": 7})
        ack = await ws.receive_json_from(timeout=3)
        assert ack["ref"] == 7 and [s["session_id"] for s in ack["streams"]] == [started["session_id"]]
        await ws.send_json_to({"type": "logs", "ref": "l1", "session_id": started["session_id"], "logs": [line("x")]})
        logs_ack = await ws.receive_json_from(timeout=3)
        assert (logs_ack["type"], logs_ack["ref"], logs_ack["accepted"]) == ("logs.ack", "l1", 1)
        await ws.disconnect()

    run(body)
    assert read(member_client, agent)["connected"] is False


def test_a_bad_frame_gets_an_error_frame_with_its_ref_and_the_socket_stays_open(agent, key):
    async def body():
        ws = await opened(agent, key[1])
        cases = [
            ({"type": "heartbeat", "ref": "a", "status": "dancing"}, "validation_error", "status", "a"),
            ({**BEAT, "ref": "b", "version": "v" * 65}, "validation_error", "version", "b"),
            ({**BEAT, "ref": "c", "metrics": []}, "validation_error", "metrics", "c"),
            ({"type": "nap", "ref": "d"}, "validation_error", "type", "d"),
            ({**BEAT, "ref": {"nested": 1}}, "validation_error", "ref", None),
            ({**BEAT, "ref": "x" * 65}, "validation_error", "ref", None),
        ]
        for frame, code, field, ref in cases:
            await ws.send_json_to(frame)
            error = await ws.receive_json_from(timeout=3)
            assert (error["type"], error["error"], error["status"], error["ref"]) == ("error", code, 400, ref), error
            assert field in error["details"] and error["message"], error
        await ws.send_json_to({**BEAT, "version": "nul\x00"})  # PostgreSQL could not store it
        error = await ws.receive_json_from(timeout=3)
        assert (error["error"], error["status"], error["ref"]) == ("parse_error", 400, None), error
        await ws.send_to(text_data="not json")
        assert (await ws.receive_json_from(timeout=3))["error"] == "parse_error"
        await ws.send_json_to({**BEAT, "ref": "ok"})
        assert (await ws.receive_json_from(timeout=3))["type"] == "heartbeat.ack"
        await ws.disconnect()

    run(body)
    assert Agent.objects.get(pk=agent.pk).version == "2.1.0"  # only the good frame wrote


def test_each_frame_kind_needs_its_permission(agent, org, member_client):
    stream_only = make_key(org, permissions=["edge:stream"])[1]

    async def body():
        ws = await opened(agent, stream_only)
        await ws.send_json_to({**BEAT, "ref": 1})
        error = await ws.receive_json_from(timeout=3)
        assert (error["error"], error["status"], error["ref"]) == ("permission_denied", 403, 1), error
        await ws.disconnect()

    run(body)
    assert read(member_client, agent)["last_heartbeat_at"] is None


def test_frames_count_in_the_agents_edge_bucket_with_its_http_requests(agent, key, settings):
    # A low Edge limit, reached in a few frames (hourly: a test cannot straddle a window's end).
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "edge": "3/h"}
    http = APIClient()
    http.credentials(HTTP_X_API_KEY=key[1])
    url = f"/api/v1/edge/agents/{agent.pk}/heartbeat"
    assert http.post(url, {"status": "online"}, format="json").status_code == 200

    async def body():
        ws = await opened(agent, key[1])
        await ws.send_json_to({**BEAT, "ref": 1})
        assert (await ws.receive_json_from(timeout=3))["type"] == "heartbeat.ack"
        await ws.send_json_to({"type": "heartbeat", "status": "bogus"})  # a bad frame counts too
        assert (await ws.receive_json_from(timeout=3))["error"] == "validation_error"
        await ws.send_json_to({**BEAT, "ref": 3, "version": "over"})
        error = await ws.receive_json_from(timeout=3)
        assert (error["error"], error["status"], error["ref"]) == ("rate_limited", 429, 3), error
        assert error["retry_after"] >= 1 and error["details"]["retry_after"] == error["retry_after"]
        await ws.disconnect()

    run(body)
    assert http.post(url, {"status": "online"}, format="json").status_code == 429
    assert Agent.objects.get(pk=agent.pk).version == "2.1.0"  # the frame over the limit wrote nothing


def test_a_revoked_key_closes_the_socket_even_when_its_event_was_missed(agent, key, admin_client, monkeypatch):
    monkeypatch.setattr(realtime, "credential_ended", lambda group, reason: None)  # the event is lost

    async def body():
        ws = await opened(agent, key[1])
        await ws.send_json_to(BEAT)
        assert (await ws.receive_json_from(timeout=3))["type"] == "heartbeat.ack"
        r = await sync_to_async(admin_client.delete)(f"/api/v1/api-keys/{key[0].pk}")
        assert r.status_code == 204
        await ws.send_json_to({**BEAT, "version": "after"})
        assert await close_of(ws) == (4401, "The API key was revoked")
        await ws.disconnect()

    run(body)
    assert Agent.objects.get(pk=agent.pk).version == "2.1.0"


def test_a_revocation_closes_an_idle_socket_at_once(agent, key, admin_client):
    async def body():
        ws = await opened(agent, key[1])
        r = await sync_to_async(admin_client.delete)(f"/api/v1/api-keys/{key[0].pk}")
        assert r.status_code == 204
        assert await close_of(ws) == (4401, "The API key was revoked")
        await ws.disconnect()

    run(body)


def test_heartbeats_of_many_sockets_arriving_together_are_all_written(org, key, member_client):
    agents = [AgentFactory(organization=org) for _ in range(20)]

    async def body():
        sockets = [await opened(agent, key[1]) for agent in agents]
        for index, ws in enumerate(sockets):
            await ws.send_json_to({**BEAT, "ref": index, "version": f"v{index}"})
        acks = await asyncio.gather(*(ws.receive_json_from(timeout=5) for ws in sockets))
        assert [(ack["type"], ack["ref"]) for ack in acks] == [("heartbeat.ack", i) for i in range(20)]
        listed = (await sync_to_async(member_client.get)("/api/v1/agents?page_size=100")).json()["items"]
        assert all(item["connected"] for item in listed) and len(listed) == 20
        for ws in sockets:
            await ws.disconnect()

    run(body)
    assert {a.pk: a.version for a in Agent.objects.filter(organization=org)} == {
        agent.pk: f"v{i}" for i, agent in enumerate(agents)
    }
