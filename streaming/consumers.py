"""WebSockets: viewers of a session, and what every LogFleet socket shares (the agent's socket,
edge.consumers, is built on CredentialSocket).

Refusals are made by accepting and then closing with a code (4401, 4403, 4404, 4410, 4413) and a
short reason, so a browser sees why. Group events: `session.ended`, `log.lines` (viewers);
`agent.stream_start`, `agent.stream_stop` (agents); `credential.ended`, `credential.check`,
`credential.expires` (both: logfleet.realtime).
"""

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http.cookie import parse_cookie
from django.http.request import validate_host
from django.utils import timezone

from accounts.browser import browser_authenticate, browser_standing
from accounts.services import session_authenticate, session_standing
from logfleet import realtime
from logfleet.api.parsers import NestedTooDeeply, may_hold_unstorable_text, strict_loads, unstorable_text
from logfleet.errors import DomainError, NotFound, Unauthenticated
from streaming import selectors, services
from streaming.models import OPEN_STATUSES
from streaming.outbox import Outbox

logger = logging.getLogger("logfleet.streaming")

MAX_FRAME_BYTES = 64 * 1024
ENDING_WARNING_SECONDS = 30
REJOIN_SECONDS = 3600


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
    async def refuse(self, code: int, reason: str):
        await self.accept()
        await self.close(code=code, reason=reason)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """A frame over 64 KiB closes the socket with 4413; a binary frame, text that is not JSON or
        JSON with a NUL or an unpaired surrogate goes to `malformed_frame`; nothing a client sends
        fails the socket (1011)."""
        size = len(text_data.encode("utf-8")) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME_BYTES:
            await self.close(code=Close.TOO_LARGE, reason="Frames are at most 64 KiB")
            return
        if text_data is None:
            await self.malformed_frame("frames are JSON text, not binary")
            return
        try:
            content = strict_loads(text_data)
        except NestedTooDeeply:
            await self.malformed_frame("the frame is nested too deeply")
            return
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

    @classmethod
    async def encode_json(cls, content):
        """Frames sent with send_json, through orjson as the API's responses (NaN and infinity are null;
        what orjson cannot encode, integers beyond 64 bits say, the standard library does)."""
        try:
            return orjson.dumps(content).decode()
        except orjson.JSONEncodeError:
            return await super().encode_json(content)


def same_origin(scope) -> bool:
    """The socket was opened by a page of this site: its Origin names the host it connected to, or one
    of CSRF_TRUSTED_ORIGINS (Django's CSRF rule for a form, without the scheme, which a TLS proxy
    changes). A socket that a signed-in browser's cookie authenticates must pass it: the cookie goes
    along wherever the socket was opened from (cross-site WebSocket hijacking)."""
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if not origin or not host:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    return urlsplit(origin).netloc.lower() == host.lower()


@dataclass(frozen=True)
class Credential:
    """What a viewer presented: an access token (`?token=`: scripts, the CLI) or a signed-in browser's
    session cookie (the dashboard's live tail, which never puts a token in a URL)."""

    kind: str  # "token" | "browser"
    secret: str
    same_origin: bool = True  # a cookie only counts from this site's own pages

    @property
    def usable(self) -> bool:
        return self.kind == "token" or self.same_origin


def _query_token(scope) -> str:
    return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]


def _credential(scope) -> Credential | None:
    token = _query_token(scope)
    if token:
        return Credential("token", token)
    session_key = parse_cookie(_header(scope, b"cookie") or "").get(settings.SESSION_COOKIE_NAME)
    if session_key:
        return Credential("browser", session_key, same_origin=same_origin(scope))
    return None


class ViewerAuthMiddleware:
    """Authenticates a viewer with the same rules as HTTP (an ended session, a deactivated user or a
    changed password refuse it): `?token=<access token>`, else the Django session cookie of a
    signed-in browser, from this site's own pages only (`same_origin`). Puts the credential in
    `scope["credential"]`, the user in `scope["user"]` and its LogFleet session in
    `scope["auth_session"]` (None when the credential does not authenticate)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        credential = _credential(scope)
        user, session = await _authenticate(credential) if credential and credential.usable else (None, None)
        scope = {**scope, "credential": credential, "user": user, "auth_session": session}
        return await self.app(scope, receive, send)


@database_sync_to_async
def _authenticate(credential: Credential):
    if credential.kind == "browser":
        return browser_authenticate(credential.secret) or (None, None)
    try:
        return session_authenticate(credential.secret)
    except Unauthenticated:
        return None, None


def _problem(exc: DomainError) -> dict:
    """An error frame's words for a domain error: its code, what is wrong with each field (else the
    message) and the details."""
    said = "; ".join(str(problem) for problem in exc.details.values() if isinstance(problem, str))
    return {"error": exc.code, "message": said or exc.message, "details": exc.details}


class CredentialSocket(RefusingConsumer):
    """A socket that holds a credential (a viewer's token, an agent's key) and closes with 4401 when it
    ends: at once on a `credential.ended` event of its groups (logfleet.realtime), at the credential's
    own expiry, and, for an event it missed, on a re-check every STREAM_SOCKET_RECHECK_SECONDS."""

    async def standing(self) -> realtime.Standing:
        raise NotImplementedError

    def init_credential_watch(self):
        self.joined: list[str] = []
        self.joined_at = time.monotonic()
        self.closing = False
        self.expires_at: float | None = None  # as the last check found it
        self.announced_expiry: float | None = None  # as a `credential.expires` event said
        self.check_now = False
        self.wake = asyncio.Event()
        self.watcher: asyncio.Task | None = None

    async def join(self, *groups: str):
        self.joined_at = time.monotonic()
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)

    async def join_and_check(self, *groups: str) -> bool:
        """Join the credential's groups, then check it: an end from now on sends an event here, and one
        that happened before (even since the first check) is seen. Refuses with 4401 when it has ended."""
        await self.join(*groups)
        standing = await self.standing()
        if standing.ended:
            self.closing = True
            await self.refuse(Close.UNAUTHENTICATED, standing.ended)
            return False
        self.expires_at = standing.expires_at
        return True

    def watch_credential(self):
        self.watcher = asyncio.ensure_future(self._watch())

    def _next_recheck(self) -> float:
        # Spread over the interval, so that the sockets of one process do not all ask at once.
        return time.monotonic() + settings.STREAM_SOCKET_RECHECK_SECONDS * random.uniform(0.5, 1.0)

    async def _watch(self):
        recheck_at = self._next_recheck()
        while not self.closing:
            if not self.check_now:
                delay = recheck_at - time.monotonic()
                expiries = [at for at in (self.expires_at, self.announced_expiry) if at is not None]
                if expiries:
                    delay = min(delay, min(expiries) - time.time() + 0.01)
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), max(0.0, delay))
                    if not self.check_now:
                        continue  # the expiry moved
                except TimeoutError:
                    pass
            self.check_now = False
            if time.monotonic() >= recheck_at:
                recheck_at = self._next_recheck()
                if time.monotonic() - self.joined_at > REJOIN_SECONDS:
                    await self._rejoin()
            try:
                standing = await self.standing()
            except Exception:  # the database is away: ask again at the next recheck
                logger.warning("could not check the credential of a socket", exc_info=True)
                continue
            if standing.ended:
                await self.end_for_credential(standing.ended)
                return
            self.expires_at = standing.expires_at

    async def _rejoin(self):
        """Join again: harmless, and it keeps the membership fresh, which the Redis layer forgets after
        a day (its group_expiry) while agents stay connected for longer."""
        self.joined_at = time.monotonic()
        try:
            for group in self.joined:
                await self.channel_layer.group_add(group, self.channel_name)
        except Exception:
            logger.warning("could not refresh the groups of a socket", exc_info=True)

    async def end_for_credential(self, reason: str):
        if self.closing:
            return
        self.closing = True
        if self.watcher is not None and self.watcher is not asyncio.current_task():
            self.watcher.cancel()
        await self.stop_sending()
        await self.close(code=Close.UNAUTHENTICATED, reason=reason)

    async def stop_sending(self):
        """Drop whatever was on its way to the client: nothing more goes out once the credential has ended."""

    async def credential_ended(self, event):
        await self.end_for_credential(event["reason"])

    async def credential_check(self, event):
        self.check_now = True
        self.wake.set()

    async def credential_expires(self, event):
        expires_at = float(event["expires_at"])
        self.announced_expiry = min(expires_at, self.announced_expiry or expires_at)
        self.wake.set()

    async def disconnect(self, code):
        self.closing = True
        if self.watcher is not None:
            self.watcher.cancel()
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)


NO_CREDENTIAL = "Sign in, or give a valid access token (?token=)"


@database_sync_to_async
def _viewer_session(user, session_id: str):
    if user is None:
        return (Close.UNAUTHENTICATED, NO_CREDENTIAL), None
    try:
        session = selectors.session_get(organization_id=user.organization_id, session_id=session_id)
    except NotFound as missing:
        return (Close.NOT_FOUND, missing.message), None
    if session.effective_status() not in OPEN_STATUSES:
        return (Close.GONE, "The stream session is over"), None
    return None, session


async def _end_idle(agent_id) -> None:
    try:
        await database_sync_to_async(services.sessions_expire_due)(agent_id=agent_id)
    except Exception:  # a timer has no caller to tell; pushes, starts and heartbeats end it too
        logger.exception("could not end the idle stream sessions of agent %s", agent_id)


class ViewerConsumer(CredentialSocket):
    """`/api/v1/stream/ws/{session_id}?token=<access token>`, or without a token from a signed-in
    browser's page (ViewerAuthMiddleware).

    Everything after the first frame goes through the viewer's bounded outbox and one writer task, so
    a viewer that stops reading holds up nobody and costs at most STREAM_VIEWER_QUEUE_BYTES.
    """

    async def connect(self):
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        self.timers: list[asyncio.TimerHandle] = []
        self.ending = False  # the session ended: what is queued goes out, then the close
        self.outbox = Outbox(settings.STREAM_VIEWER_QUEUE_BYTES)
        self.writer: asyncio.Task | None = None
        self.init_credential_watch()
        if not origin_allowed(self.scope):
            await self.refuse(Close.FORBIDDEN, "This Origin is not allowed")
            return
        credential = self.scope.get("credential")
        if credential is not None and not credential.usable:
            await self.refuse(Close.FORBIDDEN, "A browser's session is accepted from this site's own pages only")
            return
        refusal, session = await _viewer_session(self.scope.get("user"), self.session_id)
        if refusal is not None:
            await self.refuse(*refusal)
            return
        self.agent_ref = session.agent_ref
        self.organization_id = session.organization_id
        joined = await self.join_and_check(
            services.session_group(session.pk),
            realtime.auth_session_group(self.scope["auth_session"].pk),
            realtime.user_group(self.scope["user"].pk),
        )
        if not joined:
            return
        await self.accept()
        await self.send_json({"type": "control", "event": "session_started", "status": session.effective_status()})
        self.writer = asyncio.ensure_future(self._write())
        self._schedule(session.expires_at)
        self.watch_credential()
        self.presence = asyncio.ensure_future(self._present())

    async def _present(self):
        """Tell the session a viewer is here, now and every third of STREAM_IDLE_SECONDS."""
        while True:
            await database_sync_to_async(services.session_watched)(session_id=self.session_id)
            await asyncio.sleep(settings.STREAM_IDLE_SECONDS / 3)

    async def standing(self) -> realtime.Standing:
        credential = self.scope["credential"]
        if credential.kind == "browser":
            return await database_sync_to_async(browser_standing)(
                credential.secret, session_id=self.scope["auth_session"].pk, organization_id=self.organization_id
            )
        return await database_sync_to_async(session_standing)(credential.secret, organization_id=self.organization_id)

    async def _write(self):
        try:
            while True:
                item = await self.outbox.get()
                if item.close is not None:
                    self.closing = True
                    if self.watcher is not None:
                        self.watcher.cancel()
                    await self.close(code=item.close[0], reason=item.close[1])
                    return
                await self.send(text_data=item.text)
        except asyncio.CancelledError:
            raise
        except Exception:  # the viewer went away
            logger.debug("viewer of %s went away", self.session_id, exc_info=True)

    def _schedule(self, expires_at):
        loop = asyncio.get_running_loop()
        remaining = (expires_at - timezone.now()).total_seconds()
        warn_in = max(0.0, remaining - ENDING_WARNING_SECONDS)
        self.timers.append(loop.call_later(warn_in, lambda: asyncio.ensure_future(self._warn(expires_at))))
        self.timers.append(loop.call_later(max(0.0, remaining), lambda: asyncio.ensure_future(self._timeout())))

    async def _warn(self, expires_at):
        if self.closing or self.ending:
            return
        remaining = max(0, round((expires_at - timezone.now()).total_seconds()))
        self.outbox.put_control(
            {"type": "control", "event": "session_ending", "reason": "timeout", "seconds_remaining": remaining}
        )

    async def _timeout(self):
        await database_sync_to_async(services.sessions_expire_due)(agent_id=self.agent_ref)
        await self._end("timeout")

    async def _end(self, reason: str):
        for timer in self.timers:
            timer.cancel()
        self.timers = []
        if self.closing or self.ending:
            return
        self.ending = True
        self.outbox.put_control({"type": "control", "event": "session_ended", "reason": reason})
        self.outbox.put_close(1000, f"The stream session ended ({reason})")

    async def stop_sending(self):
        for timer in self.timers:
            timer.cancel()
        self.timers = []
        self.outbox.clear()
        if self.writer is not None:
            self.writer.cancel()

    async def disconnect(self, code):
        await self.stop_sending()
        presence = getattr(self, "presence", None)
        if presence is not None:
            presence.cancel()
            # The idle clock starts now: the session ends STREAM_IDLE_SECONDS later if nobody comes.
            await database_sync_to_async(services.session_watched)(session_id=self.session_id)
            asyncio.get_running_loop().call_later(
                settings.STREAM_IDLE_SECONDS + 0.5, lambda: asyncio.ensure_future(_end_idle(self.agent_ref))
            )
        await super().disconnect(code)

    async def receive_json(self, content, **kwargs):
        """Frames from viewers are ignored (only their size is checked)."""

    async def log_lines(self, event):
        if self.closing or self.ending:
            return
        for frame in event["frames"]:
            self.outbox.put_line(frame)
        self.outbox.put_dropped(event.get("dropped", 0))

    async def session_ended(self, event):
        await self._end(event["reason"])


class NotFoundConsumer(RefusingConsumer):
    """Any other WebSocket path."""

    async def connect(self):
        await self.refuse(Close.NOT_FOUND, "No such WebSocket endpoint")
