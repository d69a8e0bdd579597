"""WebSockets: viewers of a session, and the agent's low-latency channel.

Refusals are made by accepting and then closing with a code (4401, 4403, 4404, 4410, 4413), so a
browser sees the reason. Group events: `session.ended`, `log.lines` (viewers); `agent.stream_start`,
`agent.stream_stop` (agents).
"""

import asyncio
import json
import logging
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http.request import validate_host
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from accounts.services import session_authenticate
from agents.models import Agent
from apikeys import services as key_services
from logfleet.api.parsers import may_hold_unstorable_text, unstorable_text
from streaming import services
from streaming.models import OPEN_STATUSES, StreamSession

logger = logging.getLogger("logfleet.streaming")

MAX_FRAME_BYTES = 64 * 1024
ENDING_WARNING_SECONDS = 30


class Close:
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    GONE = 4410
    TOO_LARGE = 4413


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def origin_allowed(scope) -> bool:
    """A browser's Origin must be one of ALLOWED_HOSTS; a client without Origin (a script) is fine."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = origin.split("://", 1)[-1].split("/", 1)[0]
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return bool(validate_host(hostname, settings.ALLOWED_HOSTS) or validate_host(host, settings.ALLOWED_HOSTS))


class RefusingConsumer(AsyncJsonWebsocketConsumer):
    async def refuse(self, code: int):
        await self.accept()
        await self.close(code=code)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """A frame over 64 KiB closes the socket with 4413; a binary frame, text that is not JSON or
        JSON with a NUL or an unpaired surrogate goes to `malformed_frame`; nothing a client sends
        fails the socket (1011)."""
        size = len(text_data.encode("utf-8")) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME_BYTES:
            await self.close(code=Close.TOO_LARGE)
            return
        if text_data is None:
            await self.malformed_frame("frames are JSON text, not binary")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.malformed_frame("the frame is not valid JSON")
            return
        if may_hold_unstorable_text(text_data):
            found = unstorable_text(content)
            if found is not None:  # as in HTTP bodies (logfleet.api.parsers)
                path, message = found
                await self.malformed_frame(f"{path or 'the frame'} {message}")
                return
        await self.receive_json(content, **kwargs)

    async def malformed_frame(self, message: str):
        """Ignored unless a consumer answers it."""


class TokenAuthMiddleware:
    """Authenticates `?token=<access token>` with the same rules as HTTP (an ended session, a
    deactivated user or a changed password refuse it) and puts the user in `scope["user"]`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        scope = {**scope, "user": await _user_for_token(token)}
        return await self.app(scope, receive, send)


@database_sync_to_async
def _user_for_token(token: str):
    if not token:
        return None
    try:
        user, _session = session_authenticate(token)
    except AuthenticationFailed:
        return None
    return user


@database_sync_to_async
def _viewer_session(user, session_id: str):
    if user is None:
        return Close.UNAUTHENTICATED, None
    session = StreamSession.objects.filter(pk=session_id, organization_id=user.organization_id).first()
    if session is None:
        return Close.NOT_FOUND, None
    if session.effective_status() not in OPEN_STATUSES:
        return Close.GONE, None
    return None, session


class ViewerConsumer(RefusingConsumer):
    """`/api/v1/stream/ws/{session_id}?token=<access token>`."""

    async def connect(self):
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        self.group = None
        self.timers: list[asyncio.TimerHandle] = []
        if not origin_allowed(self.scope):
            await self.refuse(Close.FORBIDDEN)
            return
        refusal, session = await _viewer_session(self.scope.get("user"), self.session_id)
        if refusal is not None:
            await self.refuse(refusal)
            return
        self.agent_ref = session.agent_ref
        self.group = services.session_group(session.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "control", "event": "session_started", "status": session.effective_status()})
        self._schedule(session.expires_at)

    def _schedule(self, expires_at):
        loop = asyncio.get_running_loop()
        remaining = (expires_at - timezone.now()).total_seconds()
        warn_in = max(0.0, remaining - ENDING_WARNING_SECONDS)
        self.timers.append(loop.call_later(warn_in, lambda: asyncio.ensure_future(self._warn(expires_at))))
        self.timers.append(loop.call_later(max(0.0, remaining), lambda: asyncio.ensure_future(self._timeout())))

    async def _warn(self, expires_at):
        remaining = max(0, round((expires_at - timezone.now()).total_seconds()))
        await self.send_json(
            {"type": "control", "event": "session_ending", "reason": "timeout", "seconds_remaining": remaining}
        )

    async def _timeout(self):
        await database_sync_to_async(services.sessions_expire_due)(agent_id=self.agent_ref)
        await self._end("timeout")

    async def _end(self, reason: str):
        for timer in self.timers:
            timer.cancel()
        self.timers = []
        try:
            await self.send_json({"type": "control", "event": "session_ended", "reason": reason})
            await self.close(code=1000)
        except Exception:  # the viewer may already be gone
            logger.debug("viewer went away before the end of %s", self.session_id)

    async def disconnect(self, code):
        for timer in self.timers:
            timer.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """Frames from viewers are ignored (only their size is checked)."""

    async def log_lines(self, event):
        for line in event["lines"]:
            await self.send(text_data=json.dumps(line))
        if event.get("dropped"):
            await self.send_json({"type": "control", "event": "lines_dropped", "count": event["dropped"]})

    async def session_ended(self, event):
        await self._end(event["reason"])


@database_sync_to_async
def _agent_for_key(raw_key: str | None, agent_id: str):
    principal = key_services.authenticate(raw_key.strip()) if raw_key else None
    if principal is None:
        return Close.UNAUTHENTICATED, None, None
    if not principal.has("edge:stream"):
        return Close.FORBIDDEN, None, None
    agent = Agent.objects.filter(pk=agent_id, organization_id=principal.organization_id).first()
    if agent is None:
        return Close.NOT_FOUND, None, None
    return None, agent, services.agent_instructions(agent.pk)


class AgentConsumer(RefusingConsumer):
    """`/api/v1/edge/agents/{id}/ws` with `X-API-Key` (edge:stream): stream instructions at once, lines back."""

    async def connect(self):
        self.group = None
        agent_id = self.scope["url_route"]["kwargs"]["agent_id"]
        refusal, agent, instructions = await _agent_for_key(_header(self.scope, b"x-api-key"), agent_id)
        if refusal is not None:
            await self.refuse(refusal)
            return
        self.agent = agent
        self.group = services.agent_group(agent.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        for item in instructions:
            if item["action"] == "start":
                await self.send_json({"type": "stream.start", **{k: v for k, v in item.items() if k != "action"}})

    async def disconnect(self, code):
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def malformed_frame(self, message: str):
        await self.send_json({"type": "error", "status": 400, "message": message})

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            await self.send_json({"type": "error", "status": 400, "message": "frames are JSON objects"})
            return
        kind = content.get("type")
        if kind == "stream.ack":
            try:
                session_id = uuid.UUID(str(content.get("session_id")))
            except ValueError:
                await self.send_json({"type": "error", "status": 400, "message": "session_id must be a UUID"})
                return
            await database_sync_to_async(services.session_activate)(session_id=session_id, agent_id=self.agent.pk)
            return
        if kind != "logs":
            await self.send_json({"type": "error", "status": 400, "message": "unknown frame type"})
            return
        await self.send_json(await database_sync_to_async(self._push)(content))

    def _push(self, content: dict) -> dict:
        session_id = content.get("session_id")
        try:
            session_uuid = uuid.UUID(str(session_id))
        except ValueError:
            echoed = session_id if isinstance(session_id, str) else None
            return {"type": "error", "status": 400, "session_id": echoed, "message": "session_id must be a UUID"}
        session_id = str(session_uuid)
        try:
            lines = services.clean_lines(content.get("logs"))
            result = services.stream_push(
                session_id=session_uuid, agent_id=self.agent.pk, organization_id=self.agent.organization_id, lines=lines
            )
        except ValueError as exc:
            return {"type": "error", "status": 400, "session_id": session_id, "message": str(exc)}
        except LookupError:
            return {"type": "error", "status": 404, "session_id": session_id, "message": "no such session"}
        except Exception as exc:  # Gone and database trouble are answered, not raised into the socket
            status = getattr(exc, "status_code", 500)
            if status == 500:
                logger.exception("agent stream push failed")
            return {"type": "error", "status": status, "session_id": session_id, "message": str(exc)}
        return {"type": "ack", "session_id": session_id, **result}

    async def agent_stream_start(self, event):
        await self.send_json(
            {"type": "stream.start", **{k: v for k, v in event.items() if k not in ("type", "action")}}
        )

    async def agent_stream_stop(self, event):
        await self.send_json({"type": "stream.stop", "session_id": event["session_id"]})


class NotFoundConsumer(RefusingConsumer):
    """Any other WebSocket path."""

    async def connect(self):
        await self.refuse(Close.NOT_FOUND)
