import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.tests.factories import UserFactory
from apikeys.tests.factories import make_key
from conftest import client_for
from logfleet.asgi import application
from streaming.tests.sockets import StallingClient, agent_socket, closed_with, frames_then_close, line, run, viewer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_viewer_gets_started_lines_in_order_and_the_end(start, push_lines, online_agent, member_client, member_user):
    session_id = start(online_agent, filters={"level": ["error"]}).json()["session_id"]
    token = member_client.tokens.token

    async def body():
        ws = viewer(session_id, token)
        connected, _ = await ws.connect()
        assert connected
        assert await ws.receive_json_from() == {"type": "control", "event": "session_started", "status": "pending"}
        result = await sync_to_async(push_lines)(
            online_agent, session_id, [line("a", "ERROR"), line("skip"), line("b", "error")]
        )
        assert result.json()["accepted"] == 2
        first, second = await ws.receive_json_from(), await ws.receive_json_from()
        assert (first["type"], first["seq"], first["message"], first["level"]) == ("log", 1, "a", "ERROR")
        assert first["metadata"] == {"file": "/var/log/x"} and first["source"] == "nginx"
        assert (second["seq"], second["message"]) == (2, "b")
        await sync_to_async(member_client.post)("/api/v1/stream/stop", {"session_id": session_id}, format="json")
        assert await ws.receive_json_from() == {"type": "control", "event": "session_ended", "reason": "stopped"}
        assert await closed_with(ws) == 1000
        await ws.disconnect()

    run(body)


def test_several_viewers_and_dropped_lines(start, push_lines, online_agent, member_client, viewer_user, settings):
    settings.STREAM_MAX_LINES_PER_SECOND = 2  # the budget, reached with a handful of lines
    session_id = start(online_agent).json()["session_id"]
    tokens = [member_client.tokens.token, client_for(viewer_user).tokens.token]

    async def body():
        sockets = [viewer(session_id, token) for token in tokens]
        for ws in sockets:
            assert (await ws.connect())[0]
            await ws.receive_json_from()
        result = (await sync_to_async(push_lines)(online_agent, session_id, [line(str(i)) for i in range(5)])).json()
        for ws in sockets:
            frames = [await ws.receive_json_from() for _ in range(result["accepted"] + 1)]
            assert [f["seq"] for f in frames[:-1]] == list(range(1, result["accepted"] + 1))
            assert frames[-1] == {"type": "control", "event": "lines_dropped", "count": result["dropped"]}
            await ws.disconnect()

    run(body)


def test_the_timeout_warns_then_ends_the_session(start, online_agent, member_client):
    session_id = start(online_agent, timeout_seconds=1).json()["session_id"]

    async def body():
        ws = viewer(session_id, member_client.tokens.token)
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from())["event"] == "session_started"
        warning = await ws.receive_json_from(timeout=3)
        assert warning["event"] == "session_ending" and warning["reason"] == "timeout"
        assert 0 <= warning["seconds_remaining"] <= 1
        assert await ws.receive_json_from(timeout=3) == {
            "type": "control",
            "event": "session_ended",
            "reason": "timeout",
        }
        assert await closed_with(ws) == 1000
        await ws.disconnect()

    run(body)
    body = member_client.get(f"/api/v1/stream/sessions/{session_id}").json()
    assert body["status"] == "expired" and body["end_reason"] == "timeout"


def test_deleting_the_agent_ends_the_viewers_session(start, online_agent, member_client):
    session_id = start(online_agent).json()["session_id"]

    async def body():
        ws = viewer(session_id, member_client.tokens.token)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await sync_to_async(member_client.delete)(f"/api/v1/agents/{online_agent.pk}")
        assert (await ws.receive_json_from(timeout=3))["reason"] == "agent_deleted"
        await ws.disconnect()

    run(body)


def test_refusals(start, online_agent, member_client, other_admin_client, org):
    session_id = start(online_agent).json()["session_id"]
    ended_id = start(online_agent).json()["session_id"]
    member_client.post("/api/v1/stream/stop", {"session_id": ended_id}, format="json")
    deactivated_token = client_for(UserFactory(organization=org, status="deactivated")).tokens.token
    token = member_client.tokens.token

    async def body():
        cases = [
            (viewer(session_id, None), 4401),
            (viewer(session_id, "not-a-token"), 4401),
            (viewer(session_id, deactivated_token), 4401),
            (viewer(session_id, token, headers=[(b"origin", b"https://evil.example")]), 4403),
            (viewer(session_id, other_admin_client.tokens.token), 4404),
            (viewer("00000000-0000-4000-8000-000000000000", token), 4404),
            (viewer(ended_id, token), 4410),
            (WebsocketCommunicator(application, "/api/v1/nowhere"), 4404),
        ]
        for ws, code in cases:
            await ws.connect()
            assert await closed_with(ws) == code
            await ws.disconnect()
        allowed = viewer(session_id, token, headers=[(b"origin", b"http://localhost:8080")])
        assert (await allowed.connect())[0]
        assert (await allowed.receive_json_from())["event"] == "session_started"
        await allowed.disconnect()

    run(body)


def test_a_logged_out_token_is_refused(start, online_agent, member_client):
    session_id = start(online_agent).json()["session_id"]
    token = member_client.tokens.token
    member_client.post("/api/v1/auth/logout")

    async def body():
        ws = viewer(session_id, token)
        await ws.connect()
        assert await closed_with(ws) == 4401
        await ws.disconnect()

    run(body)


def test_viewer_frames_are_ignored_but_a_huge_one_closes_the_socket(start, online_agent, member_client):
    session_id = start(online_agent).json()["session_id"]

    async def body():
        ws = viewer(session_id, member_client.tokens.token)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await ws.send_to(text_data=json.dumps({"hello": "there"}))
        assert await ws.receive_nothing(timeout=0.2)
        await ws.send_to(text_data="x" * (64 * 1024 + 1))
        assert await closed_with(ws) == 4413
        await ws.disconnect()

    run(body)


def test_the_agent_socket_hears_starts_and_stops_and_pushes_lines(start, online_agent, member_client, stream_key):
    open_id = start(online_agent, filters={"source": "nginx"}).json()["session_id"]

    async def body():
        agent_ws = agent_socket(online_agent, stream_key)
        assert (await agent_ws.connect())[0]
        hello = await agent_ws.receive_json_from()
        assert hello["type"] == "stream.start" and hello["session_id"] == open_id
        assert hello["filters"] == {"source": "nginx"}

        new = (await sync_to_async(start)(online_agent)).json()["session_id"]
        started = await agent_ws.receive_json_from(timeout=3)
        assert (started["type"], started["session_id"]) == ("stream.start", new)

        watcher = viewer(new, member_client.tokens.token)
        assert (await watcher.connect())[0]
        await watcher.receive_json_from()
        await agent_ws.send_json_to({"type": "logs", "session_id": new, "logs": [line("over the socket")]})
        ack = await agent_ws.receive_json_from(timeout=3)
        assert ack == {
            "type": "logs.ack",
            "session_id": new,
            "accepted": 1,
            "filtered": 0,
            "dropped": 0,
            "session_status": "active",
            "ref": None,
        }
        frame = await watcher.receive_json_from(timeout=3)
        assert (frame["seq"], frame["message"]) == (1, "over the socket")

        await sync_to_async(member_client.post)("/api/v1/stream/stop", {"session_id": new}, format="json")
        assert await agent_ws.receive_json_from(timeout=3) == {"type": "stream.stop", "session_id": new}
        await agent_ws.send_json_to({"type": "logs", "session_id": new, "logs": [line("late")]})
        late = await agent_ws.receive_json_from(timeout=3)
        assert (late["type"], late["error"], late["status"], late["session_id"]) == ("error", "gone", 410, new)
        await agent_ws.send_json_to({"type": "logs", "session_id": new, "logs": "nope"})
        assert (await agent_ws.receive_json_from(timeout=3))["status"] == 400
        await watcher.disconnect()
        await agent_ws.disconnect()

    run(body)


def test_the_agent_socket_refuses_bad_keys(online_agent, org, other_org):
    from agents.tests.factories import AgentFactory

    no_stream = make_key(org, permissions=["edge:heartbeat"])[1]
    good = make_key(org)[1]
    foreign_agent = AgentFactory(organization=other_org)

    async def body():
        for ws, code in [
            (WebsocketCommunicator(application, f"/api/v1/edge/agents/{online_agent.pk}/ws"), 4401),
            (agent_socket(online_agent, "lf_prod_bogus"), 4401),
            (agent_socket(online_agent, no_stream), 4403),
            (agent_socket(foreign_agent, good), 4404),
        ]:
            await ws.connect()
            assert await closed_with(ws) == code
            await ws.disconnect()

    run(body)


def test_slow_viewers_do_not_block_the_agent(start, push_lines, online_agent, member_client):
    """A viewer that reads nothing: pushes still answer at once (its own outbox takes, or drops, the rest)."""
    session_id = start(online_agent).json()["session_id"]

    async def body():
        stuck = viewer(session_id, member_client.tokens.token)
        assert (await stuck.connect())[0]
        for _ in range(150):  # more messages than the channel layer holds for one consumer
            r = await sync_to_async(push_lines)(online_agent, session_id, [line("x")])
            assert r.status_code == 202
        await asyncio.sleep(0)
        await stuck.disconnect()

    run(body)


def test_a_viewer_that_stops_reading_loses_only_its_own_lines_and_hears_how_many(
    start, push_lines, online_agent, member_client, viewer_user, settings
):
    # Small, so that three pushes (17 kB each) overflow the stalled viewer's outbox.
    settings.STREAM_VIEWER_QUEUE_BYTES = 40_000
    session_id = start(online_agent).json()["session_id"]
    stalling = StallingClient()
    reader_token = client_for(viewer_user).tokens.token

    async def body():
        stuck = viewer(session_id, member_client.tokens.token, app=stalling)
        reader = viewer(session_id, reader_token)
        for ws in (stuck, reader):
            assert (await ws.connect())[0]
            assert (await ws.receive_json_from())["event"] == "session_started"
        stalling.reading.clear()
        accepted = 0
        for push in range(3):
            r = await sync_to_async(push_lines)(
                online_agent, session_id, [line(f"{push}-{i} " + "x" * 150) for i in range(100)]
            )
            assert r.status_code == 202 and r.json()["dropped"] == 0, r.json()
            accepted += r.json()["accepted"]
        # The viewer that reads gets every line, whatever the other does.
        assert [(await reader.receive_json_from(timeout=3))["seq"] for _ in range(accepted)] == list(
            range(1, accepted + 1)
        )
        await sync_to_async(member_client.post)("/api/v1/stream/stop", {"session_id": session_id}, format="json")
        stalling.reading.set()
        frames, code, _reason = await frames_then_close(stuck)
        assert code == 1000 and frames[-1] == {"type": "control", "event": "session_ended", "reason": "stopped"}
        # Every line either reached it or is counted, at the place of the gap.
        seen, expected = 0, 1
        for frame in frames[:-1]:
            if frame["type"] == "log":
                assert frame["seq"] == expected, frames
                expected += 1
                seen += 1
            else:
                assert frame["event"] == "lines_dropped", frame
                expected += frame["count"]
        assert expected - 1 == accepted and seen < accepted
        await stuck.disconnect()
        await reader.disconnect()

    run(body)


def test_metadata_over_its_bounds_is_cut_and_marked_on_both_push_paths(
    start, push_lines, online_agent, member_client, stream_key
):
    session_id = start(online_agent).json()["session_id"]
    sent = {
        "keys": {f"k{i}": i for i in range(100)},
        "items": {"tags": list(range(100))},
        "depth": {"a": {"b": {"c": {"d": {"e": 1}}, "c2": 2}}},
        "bytes": {"first": "x" * 5000, "second": "y" * 5000, "third": 3},
        "fine": {"file": "/var/log/x", "nested": {"ok": [1, {"two": 2}]}},
    }
    kept = {
        "keys": {f"k{i}": i for i in range(32)},
        "items": {"tags": list(range(32))},
        "depth": {"a": {"b": {"c": {}, "c2": 2}}},
        "bytes": {"first": "x" * 5000},
        "fine": sent["fine"],
    }

    async def body():
        watcher = viewer(session_id, member_client.tokens.token)
        assert (await watcher.connect())[0]
        await watcher.receive_json_from()
        r = await sync_to_async(push_lines)(
            online_agent, session_id, [line(name, metadata=metadata) for name, metadata in sent.items()]
        )
        assert r.status_code == 202 and r.json()["accepted"] == 5, r.json()
        for _ in sent:
            frame = await watcher.receive_json_from(timeout=3)
            assert frame["metadata"] == kept[frame["message"]], frame["message"]
            assert frame.get("metadata_truncated", False) is (frame["message"] != "fine"), frame["message"]

        agent_ws = agent_socket(online_agent, stream_key)
        assert (await agent_ws.connect())[0]
        await agent_ws.receive_json_from()
        await agent_ws.send_json_to(
            {"type": "logs", "session_id": session_id, "logs": [line("keys", metadata=sent["keys"])]}
        )
        assert (await agent_ws.receive_json_from(timeout=3))["accepted"] == 1
        frame = await watcher.receive_json_from(timeout=3)
        assert frame["metadata"] == kept["keys"] and frame["metadata_truncated"] is True
        await agent_ws.disconnect()
        await watcher.disconnect()

    run(body)


def test_the_agent_socket_answers_bad_frames_with_400_and_stays_open(start, online_agent, stream_key):
    session_id = start(online_agent).json()["session_id"]

    async def body():
        ws = agent_socket(online_agent, stream_key)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        for frame in (
            {"type": "logs", "session_id": "nope", "logs": [line("x")]},
            {"type": "logs", "session_id": {"id": session_id}, "logs": [line("x")]},
            {"type": "stream.ack", "session_id": [session_id]},
        ):
            await ws.send_json_to(frame)
            answer = await ws.receive_json_from(timeout=3)
            assert answer == {
                "type": "error",
                "error": "validation_error",
                "message": "must be a UUID",
                "details": {"session_id": "must be a UUID"},
                "status": 400,
                "ref": None,
            }
        for text, message in (
            ("[" * 5000 + "]" * 5000, "the frame is nested too deeply"),
            ('{"type": "logs", "session_id": NaN}', "the frame is not valid JSON"),
        ):
            await ws.send_to(text_data=text)
            assert await ws.receive_json_from(timeout=3) == {
                "type": "error",
                "error": "parse_error",
                "message": message,
                "details": {},
                "status": 400,
                "ref": None,
            }
        await ws.send_json_to({"type": "logs", "session_id": session_id, "logs": [line("still open")]})
        assert (await ws.receive_json_from(timeout=3))["accepted"] == 1
        await ws.disconnect()

    run(body)


def test_an_agent_socket_cannot_touch_another_agents_session(start, online_agent, org, member_client, stream_key):
    from agents.tests.factories import AgentFactory

    other = AgentFactory(organization=org, online=True)
    others_session = start(other).json()["session_id"]

    async def body():
        watcher = viewer(others_session, member_client.tokens.token)
        assert (await watcher.connect())[0]
        await watcher.receive_json_from()
        ws = agent_socket(online_agent, stream_key)
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "stream.ack", "session_id": others_session})
        await ws.send_json_to({"type": "logs", "session_id": others_session, "logs": [line("not mine")]})
        answer = await ws.receive_json_from(timeout=3)
        assert (answer["type"], answer["status"]) == ("error", 404), answer
        assert await watcher.receive_nothing(timeout=0.2)
        await ws.disconnect()
        await watcher.disconnect()

    run(body)
    session = member_client.get(f"/api/v1/stream/sessions/{others_session}").json()
    assert (session["status"], session["lines_sent"]) == ("pending", 0)
