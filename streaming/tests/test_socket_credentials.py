"""Open WebSockets end with their credential (API.md sections 2, 6 and 8): a viewer's socket closes
with 4401 when its session ends, an agent's when its key does, and a missed event still bites."""

import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core import mail
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import AuthSession, Role
from accounts.tests.factories import PASSWORD, OrganizationFactory
from apikeys.tests.factories import make_key
from conftest import client_for
from logfleet import mailer, realtime
from streaming.tests.sockets import agent_socket, close_of, frames_then_close, line, run, viewer

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "Another-sturdy-passw0rd"


async def watching(session_id, token):
    """A viewer's socket past its first frame."""
    ws = viewer(session_id, token)
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from())["event"] == "session_started"
    return ws


async def hears_lines(ws, push, agent, session_id, text):
    """The socket is open and gets what is pushed now."""
    result = await sync_to_async(push)(agent, session_id, [line(text)])
    assert result.status_code == 202, result.json()
    assert (await ws.receive_json_from(timeout=3))["message"] == text


def test_logging_out_closes_that_sessions_viewer_sockets_and_no_other(start, push_lines, online_agent, member_user):
    session_id = start(online_agent).json()["session_id"]
    leaving, staying = client_for(member_user), client_for(member_user)

    async def body():
        closed = await watching(session_id, leaving.tokens.token)
        kept = await watching(session_id, staying.tokens.token)
        r = await sync_to_async(leaving.post)("/api/v1/auth/logout")
        assert r.status_code == 204
        assert await close_of(closed) == (4401, "Logged out")
        await hears_lines(kept, push_lines, online_agent, session_id, "still watching")
        await closed.disconnect()
        await kept.disconnect()

    run(body)


def test_a_password_change_closes_every_viewer_socket_of_the_user(start, online_agent, member_user):
    session_id = start(online_agent).json()["session_id"]
    one, two = client_for(member_user), client_for(member_user)

    async def body():
        sockets = [await watching(session_id, client.tokens.token) for client in (one, two)]
        r = await sync_to_async(one.post)(
            "/api/v1/auth/change-password",
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            format="json",
        )
        assert r.status_code == 200, r.json()
        for ws in sockets:
            assert await close_of(ws) == (4401, "The password was changed; log in again")
            await ws.disconnect()
        # The fresh session the change answered may watch.
        fresh = await watching(session_id, r.json()["token"])
        await fresh.disconnect()

    run(body)


def test_a_password_reset_closes_the_users_viewer_sockets(start, online_agent, member_user, member_client):
    session_id = start(online_agent).json()["session_id"]

    async def body():
        ws = await watching(session_id, member_client.tokens.token)
        await sync_to_async(Client().post)(
            "/api/v1/auth/forgot-password", {"email": member_user.email}, content_type="application/json"
        )
        await sync_to_async(mailer.drain)()
        token = re.search(r"reset-password\?token=(\S+)", mail.outbox[-1].body).group(1)
        r = await sync_to_async(Client().post)(
            "/api/v1/auth/reset-password",
            {"token": token, "new_password": NEW_PASSWORD},
            content_type="application/json",
        )
        assert r.status_code == 200, r.json()
        assert await close_of(ws) == (4401, "The password was reset; log in again")
        await ws.disconnect()

    run(body)


def test_deactivating_a_member_closes_their_viewer_sockets(
    start, online_agent, admin_client, member_user, member_client
):
    session_id = start(online_agent).json()["session_id"]

    async def body():
        ws = await watching(session_id, member_client.tokens.token)
        r = await sync_to_async(admin_client.patch)(
            f"/api/v1/organization/members/{member_user.pk}", {"status": "deactivated"}, format="json"
        )
        assert r.status_code == 200, r.json()
        assert await close_of(ws) == (4401, "The account was deactivated")
        await ws.disconnect()

    run(body)


def test_deleting_a_member_closes_their_viewer_sockets(start, online_agent, admin_client, member_user, member_client):
    session_id = start(online_agent).json()["session_id"]

    async def body():
        ws = await watching(session_id, member_client.tokens.token)
        r = await sync_to_async(admin_client.delete)(f"/api/v1/organization/members/{member_user.pk}")
        assert r.status_code == 204
        assert await close_of(ws) == (4401, "The account was deleted")
        await ws.disconnect()

    run(body)


def test_an_operator_moving_a_user_to_another_organization_closes_their_viewer_sockets(
    start, online_agent, member_user, member_client, operator_client
):
    session_id = start(online_agent).json()["session_id"]
    elsewhere = OrganizationFactory()

    async def body():
        ws = await watching(session_id, member_client.tokens.token)
        r = await sync_to_async(operator_client.post)(
            f"/admin/accounts/user/{member_user.pk}/change/",
            {
                "email": member_user.email,
                "name": member_user.name,
                "organization": str(elsewhere.pk),
                "role": member_user.role,
                "status": member_user.status,
            },
        )
        assert r.status_code == 302, r.content[:2000]
        assert await close_of(ws) == (4401, "The account no longer belongs to this organization")
        await ws.disconnect()

    run(body)


def test_deleting_the_organization_closes_its_sockets(start, online_agent, member_client, stream_key, org):
    session_id = start(online_agent).json()["session_id"]

    async def body():
        ws = await watching(session_id, member_client.tokens.token)
        agent_ws = agent_socket(online_agent, stream_key)
        assert (await agent_ws.connect())[0]
        assert (await agent_ws.receive_json_from())["type"] == "stream.start"
        await sync_to_async(org.delete)()
        frames, code, reason = await frames_then_close(agent_ws)
        assert (code, reason) == (4401, "The API key was deleted")
        assert all(frame["type"] == "stream.stop" for frame in frames), frames
        # The viewer hears that its session ended with the agent (1000), or that its account went (4401).
        frames, code, _reason = await frames_then_close(ws)
        assert code in (1000, 4401) and all(frame.get("reason") == "agent_deleted" for frame in frames), frames
        await ws.disconnect()
        await agent_ws.disconnect()

    run(body)


def test_a_role_change_keeps_the_viewer_watching(start, push_lines, online_agent, admin_client, member_user):
    """Every role may watch (API.md section 2): the socket checks again and stays open."""
    session_id = start(online_agent).json()["session_id"]
    token = client_for(member_user).tokens.token

    async def body():
        ws = await watching(session_id, token)
        r = await sync_to_async(admin_client.patch)(
            f"/api/v1/organization/members/{member_user.pk}", {"role": Role.VIEWER}, format="json"
        )
        assert r.status_code == 200, r.json()
        await hears_lines(ws, push_lines, online_agent, session_id, "viewers watch too")
        await ws.disconnect()

    run(body)


def test_a_viewer_socket_closes_when_its_token_expires(start, online_agent, member_user):
    session_id = start(online_agent).json()["session_id"]
    # The session's token, made to expire within the test (`exp` is whole seconds: 2 to 3 s from now).
    token = AccessToken(client_for(member_user).tokens.token)
    token.set_exp(lifetime=timedelta(seconds=3))
    token = str(token)

    async def body():
        ws = await watching(session_id, token)
        assert await close_of(ws, timeout=6) == (4401, "The token has expired; log in again")
        await ws.disconnect()

    run(body)


def test_revoking_a_key_closes_its_agent_sockets_and_no_other(online_agent, org, admin_client, start):
    revoked, raw = make_key(org)
    other_raw = make_key(org)[1]

    async def body():
        closing, staying = agent_socket(online_agent, raw), agent_socket(online_agent, other_raw)
        for ws in (closing, staying):
            assert (await ws.connect())[0]
        r = await sync_to_async(admin_client.delete)(f"/api/v1/api-keys/{revoked.pk}")
        assert r.status_code == 204
        assert await close_of(closing) == (4401, "The API key was revoked")
        session_id = (await sync_to_async(start)(online_agent)).json()["session_id"]
        started = await staying.receive_json_from(timeout=3)
        assert (started["type"], started["session_id"]) == ("stream.start", session_id)
        await closing.disconnect()
        await staying.disconnect()

    run(body)


def test_a_key_rotated_past_its_grace_closes_its_agent_socket(online_agent, org, admin_client):
    key, raw = make_key(org)

    async def body():
        ws = agent_socket(online_agent, raw)
        assert (await ws.connect())[0]
        r = await sync_to_async(admin_client.post)(
            f"/api/v1/api-keys/{key.pk}/rotate", {"grace_seconds": 1}, format="json"
        )
        assert r.status_code == 201, r.json()
        assert await close_of(ws, timeout=5) == (4401, "The API key was rotated and its grace period is over")
        await ws.disconnect()

    run(body)


def test_an_expiring_key_closes_its_agent_socket_when_it_expires(online_agent, org):
    raw = make_key(org, expires_at=timezone.now() + timedelta(seconds=3))[1]

    async def body():
        ws = agent_socket(online_agent, raw)
        assert (await ws.connect())[0]
        assert await close_of(ws, timeout=6) == (4401, "The API key has expired")
        await ws.disconnect()

    run(body)


@pytest.fixture
def missed_events(monkeypatch):
    """The channel layer loses every credential event (a Redis blip at the wrong moment)."""

    def lost(group, message):
        raise ConnectionError("channel layer unreachable")

    monkeypatch.setattr(realtime, "group_send", lost)


def test_a_revoked_key_pushes_nothing_more_even_when_its_socket_missed_the_event(
    start, online_agent, org, admin_client, member_client, missed_events
):
    session_id = start(online_agent).json()["session_id"]
    key, raw = make_key(org)

    async def body():
        watcher = await watching(session_id, member_client.tokens.token)
        agent_ws = agent_socket(online_agent, raw)
        assert (await agent_ws.connect())[0]
        await agent_ws.receive_json_from()
        r = await sync_to_async(admin_client.delete)(f"/api/v1/api-keys/{key.pk}")
        assert r.status_code == 204
        await agent_ws.send_json_to({"type": "logs", "session_id": session_id, "logs": [line("after revocation")]})
        assert await close_of(agent_ws) == (4401, "The API key was revoked")
        assert await watcher.receive_nothing(timeout=0.2)
        await agent_ws.disconnect()
        await watcher.disconnect()

    run(body)


def test_a_missed_end_of_session_still_closes_the_viewer_at_the_next_recheck(
    start, online_agent, member_client, settings, missed_events
):
    # Short, so that the backstop bites within the test; the default is the agent heartbeat interval.
    settings.STREAM_SOCKET_RECHECK_SECONDS = 0.2
    session_id = start(online_agent).json()["session_id"]

    async def body():
        ws = await watching(session_id, member_client.tokens.token)
        r = await sync_to_async(member_client.post)("/api/v1/auth/logout")
        assert r.status_code == 204
        assert await close_of(ws) == (4401, "Logged out")
        await ws.disconnect()

    run(body)


def test_a_missed_revocation_still_closes_the_agent_socket_at_the_next_recheck(
    online_agent, org, admin_client, settings, missed_events
):
    # Short, so that the backstop bites within the test; the default is the agent heartbeat interval.
    settings.STREAM_SOCKET_RECHECK_SECONDS = 0.2
    key, raw = make_key(org)

    async def body():
        ws = agent_socket(online_agent, raw)
        assert (await ws.connect())[0]
        r = await sync_to_async(admin_client.delete)(f"/api/v1/api-keys/{key.pk}")
        assert r.status_code == 204
        assert await close_of(ws) == (4401, "The API key was revoked")
        await ws.disconnect()

    run(body)


def test_a_session_that_ended_before_the_socket_joined_is_refused(start, online_agent, member_client, monkeypatch):
    """Between the token check and joining the groups the session may end: the socket checks again."""
    from streaming import consumers

    session_id = start(online_agent).json()["session_id"]
    join = consumers.CredentialSocket.join

    async def join_after_a_logout(self, *groups):
        await sync_to_async(AuthSession.objects.filter(ended_at__isnull=True).update)(
            ended_at=timezone.now(), end_reason="logout"
        )
        await join(self, *groups)

    monkeypatch.setattr(consumers.CredentialSocket, "join", join_after_a_logout)

    async def body():
        ws = viewer(session_id, member_client.tokens.token)
        await ws.connect()
        assert await close_of(ws) == (4401, "Logged out")
        await ws.disconnect()

    run(body)
