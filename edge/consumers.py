"""The agent's socket, `/api/v1/edge/agents/{id}/ws` with `X-API-Key` (the key needs edge:stream).

One open connection per agent carries what would otherwise be a request every interval (API.md
section 6; the README's "The agent socket"): `heartbeat` frames answered `heartbeat.ack` with the
HTTP answer's fields, `logs` frames answered `logs.ack`, `stream.ack`; the server pushes
`stream.start` and `stream.stop` as sessions start and end. A frame that fails is answered with an
`error` frame in the error envelope's shape (`ref` echoed) and the socket stays open.

Every frame is authenticated like a request (the key's record in the shared cache), counted against
the Edge limit in the agent's bucket, and checked for the permission its kind needs. Heartbeats are
written as HTTP ones are, committed before their ack; the heartbeats that arrive together on this
process's sockets are handled as one batch: one read of their records, one pipelined count, one
UPDATE (`HeartbeatBatches`).
"""

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError

from agents import heartbeats, presence
from agents import services as agent_services
from apikeys import services as key_services
from edge import heartbeat_body
from logfleet import realtime, shared_cache
from logfleet.api import ratelimit
from logfleet.api.client import scope_client_ip
from logfleet.api.exceptions import domain_status
from logfleet.errors import DomainError, Forbidden, Invalid, Malformed, NotFound, RateLimited, Unavailable
from streaming import selectors as stream_selectors
from streaming import services as stream_services
from streaming.consumers import Close, CredentialSocket, _header, _problem

logger = logging.getLogger("logfleet.edge")

KEY_REFUSED = "A valid API key is required (X-API-Key)"
AGENT_NOT_FOUND = "No such agent in the organization of this API key"
FRAME_TYPES = ("heartbeat", "logs", "stream.ack")
MAX_REF_LENGTH = 64
MAX_BATCH = 1000  # heartbeats handled in one go


@dataclass(frozen=True)
class Outcome:
    """What a frame comes to: an answer to send, an error frame, nothing, or the key's end (close 4401)."""

    answer: dict | None = None
    error: DomainError | None = None
    extra: dict | None = None  # beside the error's fields (the session_id of a logs frame)
    ended: bool = False


ENDED = Outcome(ended=True)
SILENT = Outcome()


def _ref(content: dict) -> tuple[object, str | None]:
    """The frame's `ref` and what is wrong with it (None when it is fine or absent)."""
    ref = content.get("ref")
    if ref is None:
        return None, None
    if isinstance(ref, bool) or not isinstance(ref, str | int):
        return None, "must be a string or an integer"
    if isinstance(ref, str) and len(ref) > MAX_REF_LENGTH:
        return None, f"must be at most {MAX_REF_LENGTH} characters"
    if isinstance(ref, int) and not -(2**53) <= ref <= 2**53:
        return None, "must be an integer JavaScript can hold exactly"
    return ref, None


def _error_frame(exc: DomainError, ref, extra: dict | None = None) -> dict:
    frame = {"type": "error", **_problem(exc), "status": domain_status(exc), "ref": ref, **(extra or {})}
    if isinstance(exc, RateLimited):
        frame["retry_after"] = exc.retry_after
    return frame


def _database_failure(exc: Exception) -> DomainError:
    if isinstance(exc, OperationalError | InterfaceError):
        return Unavailable("The database did not take the heartbeat; retry shortly")
    logger.error("heartbeat over a socket refused by the database: %s", exc)
    return Invalid("The heartbeat could not be stored")


@dataclass(frozen=True)
class Beat:
    """A valid heartbeat frame of a socket, waiting for its batch."""

    raw_key: str
    rate_key: str
    organization_id: str
    agent_id: uuid.UUID
    ip_address: str | None
    fields: dict


def heartbeat_batch(beats: list[Beat]) -> list[Outcome]:
    """Authenticate, count and write a batch of socket heartbeats; one Outcome each, in order."""
    records = set()
    for beat in beats:
        records.update(
            (
                key_services.record_cache_key(beat.raw_key),
                heartbeats.identity_key(beat.agent_id),
                stream_selectors.instructions_key(beat.agent_id),
            )
        )
    records.discard(None)
    with shared_cache.prefetched(*records), key_services.touches_deferred():
        usages = ratelimit.consume_keys(group="edge", keys=[beat.rate_key for beat in beats])
        outcomes: list[Outcome | None] = []
        writes, written = [], []
        for beat, usage in zip(beats, usages, strict=True):
            principal = key_services.authenticate(beat.raw_key)
            if principal is None:
                outcomes.append(ENDED)
            elif usage is not None and usage.exceeded:
                outcomes.append(Outcome(error=RateLimited(usage.retry_after)))
            elif not principal.has("edge:heartbeat"):
                outcomes.append(Outcome(error=Forbidden("This API key lacks the permission edge:heartbeat")))
            else:
                fields = beat.fields
                writes.append(
                    {
                        "organization_id": beat.organization_id,
                        "agent_id": beat.agent_id,
                        "status": fields["status"],
                        "ip_address": beat.ip_address,
                        "version": fields["version"],
                        "system_metrics": fields["metrics"],
                        "config_report": fields["config_report"],
                        "sources": fields["sources"],
                    }
                )
                written.append(len(outcomes))
                outcomes.append(None)
        results = agent_services.agent_heartbeats(beats=writes) if writes else []
        for index, result in zip(written, results, strict=True):
            agent_id = beats[index].agent_id
            if result is None:
                outcomes[index] = Outcome(error=NotFound(AGENT_NOT_FOUND))
            elif isinstance(result, Exception):
                outcomes[index] = Outcome(error=_database_failure(result))
            else:
                outcomes[index] = Outcome(answer={"type": "heartbeat.ack", **heartbeat_body.answer(agent_id, result)})
    return outcomes


class HeartbeatBatches:
    """Group commit of the socket heartbeats of this process, on its event loop.

    A frame joins the pending list; if no batch is being handled, a task takes everything pending
    and handles it in one worker-thread call (`heartbeat_batch`), then the next lot that gathered
    meanwhile, until none is left. So a batch costs one thread hop, one read of the shared cache,
    one pipelined count and one UPDATE however many sockets it serves, and each ack goes out once
    its heartbeat is committed.
    """

    def __init__(self):
        self.pending: list[tuple[Beat, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def submit(self, beat: Beat) -> Outcome:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((beat, future))
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._drain())
        return await future

    async def _drain(self):
        while self.pending:
            batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            try:
                outcomes = await database_sync_to_async(heartbeat_batch)([beat for beat, _future in batch])
            except Exception:
                logger.exception("a batch of socket heartbeats failed")
                outcomes = [Outcome(error=Unavailable())] * len(batch)
            for (_beat, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)


batches = HeartbeatBatches()


@database_sync_to_async
def _agent_for_key(raw_key: str, agent_id):
    """(refusal, organization id, principal): the key and the agent, from the shared cache."""
    record = key_services.record_cache_key(raw_key) if raw_key else None
    if record is None:
        return (Close.UNAUTHENTICATED, KEY_REFUSED), None, None
    # The key's record and the agent's identity in one round trip (most connects find both cached).
    with shared_cache.prefetched(record, heartbeats.identity_key(agent_id)):
        return _check_key_and_agent(raw_key, agent_id)


def _check_key_and_agent(raw_key: str, agent_id):
    principal = key_services.authenticate(raw_key)
    if principal is None:
        return (Close.UNAUTHENTICATED, KEY_REFUSED), None, None
    if not principal.has("edge:stream"):
        return (Close.FORBIDDEN, "This API key lacks the permission edge:stream"), None, None
    identity = heartbeats.agent_identity(agent_id)
    if identity is None or identity.organization_id != principal.organization_id:
        return (Close.NOT_FOUND, AGENT_NOT_FOUND), None, None
    return None, identity.organization_id, principal


class AgentConsumer(CredentialSocket):
    async def connect(self):
        self.init_credential_watch()
        self.present = False
        self.authenticated_at: float | None = None  # when a frame last authenticated the key
        self.raw_key = (_header(self.scope, b"x-api-key") or "").strip()
        agent_id = self.scope["url_route"]["kwargs"]["agent_id"]
        refusal, organization_id, principal = await _agent_for_key(self.raw_key, agent_id)
        if refusal is not None:
            await self.refuse(*refusal)
            return
        self.agent_id, self.organization_id = agent_id, organization_id
        self.key_id = principal.id
        # The bucket of the key and the agent, as the agent's HTTP requests (edge.views.EdgeView).
        self.rate_key = f"{principal.rate_key}:agent:{agent_id}"
        self.ip_address = scope_client_ip(self.scope)
        # Joined before the key is checked again, so that an end from now on sends an event here, and
        # one that happened before is seen (streaming.consumers.CredentialSocket.join_and_check); the
        # check, the presence record and the instructions in one hop to the worker thread.
        await self.join(stream_services.agent_group(agent_id), realtime.api_key_group(principal.id))
        standing, instructions = await database_sync_to_async(self._opened)()
        if standing.ended:
            self.closing = True
            await self.refuse(Close.UNAUTHENTICATED, standing.ended)
            return
        self.expires_at = standing.expires_at
        # The key was just authenticated: the periodic re-check has nothing to add until it is due
        # (a fleet that connects together does not re-check together before its first heartbeats).
        self.authenticated_at = time.monotonic()
        await self.accept()
        presence.keep_fresh()
        for item in instructions:
            if item["action"] == "start":
                await self.send_json({"type": "stream.start", **{k: v for k, v in item.items() if k != "action"}})
        self.watch_credential()

    def _opened(self) -> tuple[realtime.Standing, list[dict]]:
        keys = (key_services.record_cache_key(self.raw_key), stream_selectors.instructions_key(self.agent_id))
        with shared_cache.prefetched(*keys):  # the key's record and the instructions in one round trip
            standing = self._standing()
            if standing.ended:
                return standing, []
            presence.socket_opened(self.agent_id)
            self.present = True
            return standing, stream_selectors.agent_instructions(self.agent_id)

    async def disconnect(self, code):
        if getattr(self, "present", False):
            self.present = False
            await database_sync_to_async(presence.socket_closed)(self.agent_id)
        await super().disconnect(code)

    async def standing(self) -> realtime.Standing:
        """The key's standing, read as a request reads it (the key's record in the shared cache, which
        revocation and rotation refresh after they commit, before they send their event; the database
        without Redis). While frames keep authenticating the key the periodic re-check has nothing to
        add: it asks only for a socket that has been quiet, or once an expiry it knows of is due."""
        now = time.time()
        due = [at for at in (self.expires_at, self.announced_expiry) if at is not None and at <= now]
        recently = self.authenticated_at is not None and (
            time.monotonic() - self.authenticated_at < settings.STREAM_SOCKET_RECHECK_SECONDS
        )
        if recently and not due:
            return realtime.Standing(expires_at=self.expires_at)
        return await database_sync_to_async(self._standing)()

    def _standing(self) -> realtime.Standing:
        principal = key_services.authenticate(self.raw_key)
        if principal is None:  # why, in the words of the database
            return key_services.key_standing(key_id=self.key_id)
        return realtime.Standing(expires_at=principal.expires_at)

    # --- frames ------------------------------------------------------------------------------

    async def malformed_frame(self, message: str):
        await self._handle(None, None, Malformed(message))

    async def receive_json(self, content, **kwargs):
        if self.closing:
            return
        if not isinstance(content, dict):
            await self._handle(None, None, Invalid("frames are JSON objects", details={}))
            return
        ref, ref_problem = _ref(content)
        if ref_problem is not None:
            await self._handle(None, None, Invalid(details={"ref": ref_problem}))
            return
        kind = content.get("type")
        if kind not in FRAME_TYPES:
            await self._handle(ref, None, Invalid(details={"type": f"must be one of {', '.join(FRAME_TYPES)}"}))
            return
        if kind == "heartbeat":
            try:
                fields = heartbeat_body.parse(content)
            except Invalid as exc:
                await self._handle(ref, None, exc)
                return
            beat = Beat(
                raw_key=self.raw_key,
                rate_key=self.rate_key,
                organization_id=self.organization_id,
                agent_id=self.agent_id,
                ip_address=self.ip_address,
                fields=fields,
            )
            await self._deliver(await batches.submit(beat), ref)
            return
        await self._handle(ref, content, None)

    async def _handle(self, ref, content: dict | None, problem: DomainError | None):
        """A frame other than a valid heartbeat: counted like one, then acted on (or refused)."""
        await self._deliver(await database_sync_to_async(self._act)(content, problem), ref)

    def _act(self, content: dict | None, problem: DomainError | None) -> Outcome:
        if key_services.authenticate(self.raw_key) is None:
            return ENDED
        usage = ratelimit.consume_key(group="edge", key=self.rate_key)
        if usage is not None and usage.exceeded:
            return Outcome(error=RateLimited(usage.retry_after))
        if problem is not None:
            return Outcome(error=problem)
        try:
            session_id = uuid.UUID(str(content.get("session_id")))
        except ValueError:
            return Outcome(error=Invalid("session_id must be a UUID", details={"session_id": "must be a UUID"}))
        extra = {"session_id": str(session_id)}
        try:
            if content["type"] == "stream.ack":
                stream_services.session_activate(session_id=session_id, agent_id=self.agent_id)
                return SILENT
            lines = stream_services.clean_lines(content.get("logs"))
            result = stream_services.stream_push(
                session_id=session_id, agent_id=self.agent_id, organization_id=self.organization_id, lines=lines
            )
        except DomainError as exc:  # invalid lines, an unknown or ended session, Redis unavailable
            return Outcome(error=exc, extra=extra)
        except Exception:  # database trouble is answered, not raised into the socket
            logger.exception("agent stream push failed")
            return Outcome(error=Unavailable(), extra=extra)
        return Outcome(answer={"type": "logs.ack", **extra, **result})

    async def _deliver(self, outcome: Outcome, ref):
        if self.closing:
            return
        if outcome.ended:
            # The key no longer authenticates a request: the socket ends as a request would be refused.
            standing = await database_sync_to_async(self._standing)()
            await self.end_for_credential(standing.ended or KEY_REFUSED)
            return
        self.authenticated_at = time.monotonic()
        if outcome.answer is not None:
            await self.send_json({**outcome.answer, "ref": ref})
        elif outcome.error is not None:
            await self.send_json(_error_frame(outcome.error, ref, outcome.extra))

    # --- group events ------------------------------------------------------------------------

    async def agent_stream_start(self, event):
        if self.closing:
            return
        await self.send_json(
            {"type": "stream.start", **{k: v for k, v in event.items() if k not in ("type", "action")}}
        )

    async def agent_stream_stop(self, event):
        if self.closing:
            return
        await self.send_json({"type": "stream.stop", "session_id": event["session_id"]})
