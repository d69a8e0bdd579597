"""The viewer WebSocket of a signed-in browser (UI.md: the live tail never puts a token in a URL):
the Django session cookie authenticates it, from this site's own pages only, and the socket ends
with the browser's sign-in, with the same close codes and reasons as a token's."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.browser import BROWSER_SIGNED_OUT
from accounts.tests.factories import PASSWORD
from logfleet import realtime
from logfleet.asgi import application
from logfleet.testing import browser_session_cookie
from streaming.consumers import NO_CREDENTIAL
from streaming.tests.sockets import close_of, line, run

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "localhost:8000"


def signed_in(user) -> tuple[Client, str]:
    """A browser signed in through the sign-in form, and its session cookie."""
    client = Client(HTTP_HOST=SITE)
    r = client.post("/login", {"email": user.email, "password": PASSWORD})
    assert r.status_code == 302, r.content.decode()[:500]
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


def browser_socket(session_id, session_key=None, *, origin=f"http://{SITE}", host=SITE):
    headers = [(b"host", host.encode())]
    if session_key is not None:
        headers.append((b"cookie", f"csrftoken=abc; {settings.SESSION_COOKIE_NAME}={session_key}".encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(application, f"/api/v1/stream/ws/{session_id}", headers=headers)


async def watching(session_id, session_key):
    ws = browser_socket(session_id, session_key)
    connected, _ = await ws.connect()
    assert connected
    first = await ws.receive_json_from()
    assert (first["type"], first["event"]) == ("control", "session_started"), first
    return ws


def test_a_signed_in_browsers_socket_receives_lines_without_a_token(
    start, push_lines, online_agent, member_user, viewer_user
):
    session_id = start(online_agent).json()["session_id"]
    _client, cookie = signed_in(viewer_user)

    async def body():
        ws = await watching(session_id, cookie)
        r = await sync_to_async(push_lines)(online_agent, session_id, [line("one"), line("two")])
        assert r.status_code == 202, r.json()
        frames = [await ws.receive_json_from(timeout=3) for _ in range(2)]
        assert [(frame["seq"], frame["message"]) for frame in frames] == [(1, "one"), (2, "two")]
        await ws.disconnect()

    run(body)


def test_signing_out_closes_the_browsers_open_socket_with_its_reason(start, online_agent, member_user):
    session_id = start(online_agent).json()["session_id"]
    client, cookie = signed_in(member_user)
    _other_browser, other_cookie = signed_in(member_user)

    async def body():
        ws = await watching(session_id, cookie)
        kept = await watching(session_id, other_cookie)
        r = await sync_to_async(client.post)("/logout")
        assert r.status_code == 302
        assert await close_of(ws) == (4401, "Logged out")
        await ws.disconnect()
        # The same person's other browser goes on watching; the signed-out cookie no longer opens one.
        assert await kept.receive_nothing(timeout=0.3)
        again = browser_socket(session_id, cookie)
        await again.connect()
        assert await close_of(again) == (4401, NO_CREDENTIAL)
        await again.disconnect()
        await kept.disconnect()

    run(body)


def test_a_password_change_elsewhere_closes_every_browser_socket_of_the_person(
    start, online_agent, member_user, member_client
):
    session_id = start(online_agent).json()["session_id"]
    _client, cookie = signed_in(member_user)

    async def body():
        ws = await watching(session_id, cookie)
        r = await sync_to_async(member_client.post)(
            "/api/v1/auth/change-password",
            {"current_password": PASSWORD, "new_password": "Another-sturdy-passw0rd"},
            format="json",
        )
        assert r.status_code == 200, r.json()
        assert await close_of(ws) == (4401, "The password was changed; log in again")
        await ws.disconnect()

    run(body)


def test_a_browser_session_gone_without_an_event_closes_the_socket_at_its_next_check(start, online_agent, member_user):
    session_id = start(online_agent).json()["session_id"]
    _client, cookie = signed_in(member_user)

    async def body():
        ws = await watching(session_id, cookie)
        # Django's session expired or was cleared (clearsessions) while the LogFleet session is open.
        await sync_to_async(Session.objects.filter(session_key=cookie).delete)()
        await sync_to_async(realtime.group_send)(realtime.user_group(member_user.pk), {"type": "credential.check"})
        assert await close_of(ws) == (4401, BROWSER_SIGNED_OUT)
        await ws.disconnect()

    run(body)


def test_a_cross_origin_socket_is_refused_even_with_the_cookie(start, online_agent, member_user, settings):
    session_id = start(online_agent).json()["session_id"]
    _client, cookie = signed_in(member_user)

    async def refused(**kwargs):
        ws = browser_socket(session_id, cookie, **kwargs)
        await ws.connect()
        closed = await close_of(ws)
        await ws.disconnect()
        return closed

    async def body():
        assert await refused(origin="http://evil.example") == (4403, "This Origin is not allowed")
        # An Origin the host list allows is not enough: the page must be this site's own.
        settings.ALLOWED_HOSTS = ["*"]
        own_pages_only = (4403, "A browser's session is accepted from this site's own pages only")
        assert await refused(origin="http://evil.example") == own_pages_only
        assert await refused(origin=f"http://{SITE}", host="other.example:8000") == own_pages_only
        assert await refused(origin=None) == own_pages_only
        settings.CSRF_TRUSTED_ORIGINS = ["https://dash.example.com"]
        ws = browser_socket(session_id, cookie, origin="https://dash.example.com", host="10.0.0.5:8000")
        connected, _ = await ws.connect()
        assert connected and (await ws.receive_json_from())["event"] == "session_started"
        await ws.disconnect()

    run(body)


def test_a_socket_without_a_session_or_token_is_refused(start, online_agent):
    session_id = start(online_agent).json()["session_id"]
    unknown_cookie = "x" * 32
    # A Django session that holds no LogFleet session (an anonymous visitor's) authenticates nobody.
    anonymous = SessionStore()
    anonymous["seen"] = True
    anonymous.create()

    async def body():
        for cookie in (None, unknown_cookie, anonymous.session_key):
            ws = browser_socket(session_id, cookie)
            await ws.connect()
            assert await close_of(ws) == (4401, NO_CREDENTIAL), cookie
            await ws.disconnect()

    run(body)


def test_a_token_still_takes_precedence_over_the_cookie(start, online_agent, member_user):
    session_id = start(online_agent).json()["session_id"]
    cookie = browser_session_cookie(member_user, f"http://{SITE}")["value"]

    async def body():
        ws = WebsocketCommunicator(
            application,
            f"/api/v1/stream/ws/{session_id}?token=not-a-token",
            headers=[(b"host", SITE.encode()), (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())],
        )
        await ws.connect()
        assert await close_of(ws) == (4401, NO_CREDENTIAL)
        await ws.disconnect()

    run(body)
