"""The service as it is deployed: `make run`'s server and the README's production recipe, driven
from outside over real HTTP and WebSockets (issue: right where it is deployed)."""

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from email.message import Message

import pytest
import websockets
from django.conf import settings
from django.utils import timezone

from bench.live import LiveServer, http_json

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PASSWORD = "a sturdy passphrase"
EDGE_PERMISSIONS = ["edge:register", "edge:heartbeat", "edge:stream", "edge:metrics"]


def request(url: str, *, method="GET", body=None, headers=None) -> tuple[int, Message, bytes]:
    """(status, headers, body) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    data = json.dumps(body).encode() if body is not None else None
    prepared = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.build_opener(NoRedirect).open(prepared, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def organization_with_key(base: str, headers: dict | None = None) -> tuple[str, str]:
    """A new organization through the API: (access token, raw API key with every edge permission)."""
    email = f"walk-{uuid.uuid4().hex[:8]}@example.com"
    status, registered = http_json(
        f"{base}/api/v1/auth/register",
        {"organization_name": f"Walk {email}", "email": email, "password": PASSWORD, "name": "Walker"},
        headers,
    )
    assert status == 201, registered
    token = registered["token"]
    status, key = http_json(
        f"{base}/api/v1/api-keys",
        {"name": "walk", "permissions": EDGE_PERMISSIONS},
        {"Authorization": f"Bearer {token}", **(headers or {})},
    )
    assert status == 201, key
    return token, key["raw_key"]


def test_the_make_run_server_walks_the_whole_loop():
    """`make run`'s server (Daphne, every default) with a production PUBLIC_URL, on the suite's
    database and Redis: from sign-up to a queried metric, each step at once after the one before."""
    server = LiveServer({"PUBLIC_URL": "https://logfleet.example.com"})
    base = server.url
    try:
        token, raw_key = organization_with_key(base)
        bearer, keyed = {"Authorization": f"Bearer {token}"}, {"X-API-Key": raw_key}

        status, agent = http_json(f"{base}/api/v1/edge/register", {"name": "walk-01", "hostname": "h1"}, keyed)
        assert status == 201, agent
        agent_id = agent["id"]
        status, ack = http_json(f"{base}/api/v1/edge/agents/{agent_id}/heartbeat", {"status": "online"}, keyed)
        assert status == 200 and ack["status"] == "acknowledged", ack
        # Acknowledged means written: the agent is online for every reader right away.
        status, shown = http_json(f"{base}/api/v1/agents/{agent_id}", headers=bearer)
        assert status == 200 and shown["status"] == "online", shown
        status, started = http_json(f"{base}/api/v1/stream/start", {"agent_id": agent_id}, bearer)
        assert status == 201, started
        session_id = started["session_id"]
        # Plain HTTP to the process: ws://, whatever PUBLIC_URL says.
        assert started["websocket_url"] == f"ws://127.0.0.1:{server.port}/api/v1/stream/ws/{session_id}"

        async def watch():
            async with websockets.connect(f"{started['websocket_url']}?token={token}") as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "session_started"
                line = {"timestamp": "2024-01-15T10:30:00Z", "level": "INFO", "message": "hello", "source": "app"}
                status, pushed = await asyncio.to_thread(
                    http_json,
                    f"{base}/api/v1/edge/agents/{agent_id}/stream",
                    {"session_id": session_id, "logs": [line]},
                    keyed,
                )
                assert status == 202 and pushed["accepted"] == 1, pushed
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert (frame["type"], frame["seq"], frame["message"]) == ("log", 1, "hello")

        asyncio.run(watch())

        now = timezone.now().replace(microsecond=0).isoformat().replace("+00:00", "Z")
        sample = {"name": "walk_requests_total", "type": "counter", "labels": {"m": "GET"}, "timestamp": now}
        status, ingested = http_json(
            f"{base}/api/v1/edge/agents/{agent_id}/metrics",
            {"batch_id": str(uuid.uuid4()), "samples": [{**sample, "value": 3}]},
            keyed,
        )
        assert status == 202 and ingested["accepted"] == 1, ingested
        status, queried = http_json(f"{base}/api/v1/metrics/query?name=walk_requests_total&group_by=m", headers=bearer)
        assert status == 200, queried
        assert [(s["labels"], sum(v for _, v in s["points"])) for s in queried["series"]] == [({"m": "GET"}, 3)]
    finally:
        server.stop()


def recipe_env(**extra) -> dict:
    """The README's production environment (its database and Redis are the suite's)."""
    return {
        "PUBLIC_URL": "https://fleet.example.com",
        "ALLOWED_HOSTS": "fleet.example.com",
        "TRUSTED_PROXY_COUNT": "1",
        "DEBUG": "false",
        **extra,
    }


PROXIED = {"Host": "fleet.example.com", "X-Forwarded-For": "203.0.113.9"}
TLS = {**PROXIED, "X-Forwarded-Proto": "https"}


def test_the_production_recipe_behind_a_tls_proxy():
    """Uvicorn workers behind a TLS proxy: requests the proxy marks https are secure (wss://, HSTS
    without preload); plain ones, and agents on the inside, are served, never redirected."""
    # Several workers need the shared cache and channel layer; without Redis the recipe runs one.
    server = LiveServer(recipe_env(), server="uvicorn", workers=2 if settings.REDIS_URL else 1)
    base = server.url
    try:
        token, raw_key = organization_with_key(base, TLS)
        keyed = {"X-API-Key": raw_key}
        for headers in ({}, PROXIED, TLS):
            assert request(f"{base}/healthz", headers=headers)[0] == 200, headers
        # An agent on the internal network, plain HTTP straight to the process: served.
        status, _, body = request(
            f"{base}/api/v1/edge/register", method="POST", body={"name": "inside"}, headers={**keyed, **PROXIED}
        )
        assert status == 201, body
        agent_id = json.loads(body)["id"]
        status, _, body = request(
            f"{base}/api/v1/edge/agents/{agent_id}/heartbeat",
            method="POST",
            body={"status": "online"},
            headers={**keyed, **PROXIED},
        )
        assert status == 200, body

        def start(headers):
            status, answer_headers, body = request(
                f"{base}/api/v1/stream/start",
                method="POST",
                body={"agent_id": agent_id},
                headers={"Authorization": f"Bearer {token}", **headers},
            )
            assert status == 201, body
            return answer_headers, json.loads(body)["websocket_url"]

        plain_headers, plain_url = start(PROXIED)
        assert plain_url.startswith("ws://fleet.example.com/api/v1/stream/ws/")
        assert "Strict-Transport-Security" not in plain_headers
        tls_headers, tls_url = start(TLS)
        assert tls_url.startswith("wss://fleet.example.com/api/v1/stream/ws/")
        assert tls_headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        # The client address is the one the proxy saw.
        status, shown = http_json(
            f"{base}/api/v1/agents/{agent_id}", headers={"Authorization": f"Bearer {token}", **TLS}
        )
        assert status == 200 and shown["ip_address"] == "203.0.113.9", shown
        # A host outside ALLOWED_HOSTS is refused in the envelope, not redirected.
        status, _, body = request(f"{base}/api/v1/auth/me", headers={"Host": "evil.example.net"})
        assert status == 400 and json.loads(body)["error"] == "validation_error", body
    finally:
        server.stop()


def test_https_only_refuses_plain_api_requests_and_redirects_pages():
    server = LiveServer(recipe_env(HTTPS_ONLY="true"), server="uvicorn")
    base = server.url
    try:
        status, _, body = request(f"{base}/api/v1/auth/login", method="POST", body={}, headers=PROXIED)
        assert status == 403, body
        error = json.loads(body)
        assert error["error"] == "permission_denied" and "https" in error["message"].lower(), error
        status, headers, _ = request(f"{base}/admin/login/?next=/admin/", headers=PROXIED)
        assert status == 301 and headers["Location"] == "https://fleet.example.com/admin/login/?next=/admin/"
        assert request(f"{base}/healthz", headers=PROXIED)[0] == 200
        assert request(f"{base}/readyz", headers=PROXIED)[0] == 200
        status, _, body = request(f"{base}/api/v1/auth/login", method="POST", body={}, headers=TLS)
        assert status == 400 and "email" in json.loads(body)["details"], body
        assert request(f"{base}/admin/login/", headers=TLS)[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
def test_no_frame_a_client_sends_fails_the_socket(server_kind):
    """Viewers' frames are ignored, an agent's malformed ones answered; over 64 KiB closes with 4413."""
    server = LiveServer({}, server=server_kind)
    base = server.url
    ws_base = base.replace("http://", "ws://")
    try:
        token, raw_key = organization_with_key(base)
        keyed = {"X-API-Key": raw_key}
        agent_id = http_json(f"{base}/api/v1/edge/register", {"name": "frames"}, keyed)[1]["id"]
        assert http_json(f"{base}/api/v1/edge/agents/{agent_id}/heartbeat", {"status": "online"}, keyed)[0] == 200
        status, started = http_json(
            f"{base}/api/v1/stream/start", {"agent_id": agent_id}, {"Authorization": f"Bearer {token}"}
        )
        assert status == 201, started

        async def frames():
            async with websockets.connect(f"{started['websocket_url']}?token={token}") as viewer:
                await asyncio.wait_for(viewer.recv(), 5)
                for frame in (b"\x00\x01binary", "not json", "[1, 2]", '"text"', "{}", "x" * 65536):
                    await viewer.send(frame)
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(viewer.recv(), 0.5)  # ignored, and still open
                await viewer.send("x" * (64 * 1024 + 1))
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(viewer.recv(), 5)
                assert viewer.close_code == 4413, (viewer.close_code, viewer.close_reason)

            agent_url = f"{ws_base}/api/v1/edge/agents/{agent_id}/ws"
            async with websockets.connect(agent_url, additional_headers=keyed) as agent:
                assert json.loads(await asyncio.wait_for(agent.recv(), 5))["type"] == "stream.start"
                for frame in (b"\x00binary", "not json", "[1]", json.dumps({"type": "stream.ack", "session_id": "x"})):
                    await agent.send(frame)
                    answer = json.loads(await asyncio.wait_for(agent.recv(), 5))
                    assert answer["type"] == "error" and answer["status"] == 400, answer
                await agent.send(json.dumps({"type": "stream.ack", "session_id": started["session_id"]}))
                await agent.send(json.dumps({"type": "logs", "session_id": started["session_id"], "logs": []}))
                assert json.loads(await asyncio.wait_for(agent.recv(), 5))["type"] == "logs.ack"

        asyncio.run(frames())
    finally:
        server.stop()


@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
def test_every_server_writes_an_access_log_without_tokens(server_kind):
    server = LiveServer({}, server=server_kind)
    try:
        token, _ = organization_with_key(server.url)

        async def knock():
            url = f"{server.url.replace('http://', 'ws://')}/api/v1/stream/ws/{uuid.uuid4()}?token={token}"
            async with websockets.connect(url) as ws:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)  # 4404: no such session

        asyncio.run(knock())
        http_json(f"{server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        output = server.output(full=True)
        assert "/api/v1/auth/register" in output and "/api/v1/auth/me" in output, output[-2000:]
        assert "/api/v1/stream/ws/" in output and token not in output  # the viewer's token, redacted or unlogged
    finally:
        server.stop()
