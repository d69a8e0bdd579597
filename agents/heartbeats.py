"""Heartbeats: acknowledged from the shared cache, written to the database in bulk.

A heartbeat needs to know two things at once: that the agent belongs to the key's
organization and its current config hash (the answer). Both come from a small identity record
in the shared cache (one round trip; the database on a miss). The write (status, time, address,
host metrics, config report) is last-write-wins telemetry that the agent repeats every 30 s: it
is buffered per process and flushed every HEARTBEAT_FLUSH_SECONDS (default 1) in one
transaction, so an agent's status is at most that much late and thousands of agents cost one
round trip a second instead of one each. With HEARTBEAT_FLUSH_SECONDS=0 every heartbeat is
written before it is answered (the tests use this).

Identity records live in the shared cache like API-key records (logfleet.shared_cache).
"""

import atexit
import logging
import threading
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from agents.models import Agent
from logfleet import shared_cache

logger = logging.getLogger("logfleet.heartbeats")

IDENTITY_TTL = 600  # seconds
_GONE = "gone"  # cached for deleted agents


@dataclass(frozen=True)
class AgentIdentity:
    organization_id: str
    config_hash: str


def _identity_key(agent_id) -> str:
    return f"agent-identity:{agent_id}"


def _load(agent_id) -> tuple | str:
    row = Agent.objects.filter(pk=agent_id).values_list("organization_id", "config_hash").first()
    return (str(row[0]), row[1]) if row else _GONE


def agent_identity(agent_id) -> AgentIdentity | None:
    record = shared_cache.read_through(_identity_key(agent_id), lambda: _load(agent_id), IDENTITY_TTL)
    if record == _GONE:
        return None
    return AgentIdentity(*record)


def identity_changed(agent_id) -> None:
    """The agent's config hash changed or the agent is gone."""
    shared_cache.refresh_after_commit(_identity_key(agent_id), lambda: _load(agent_id), IDENTITY_TTL)


@receiver(post_delete, sender=Agent, dispatch_uid="agents-identity-on-delete")
def _agent_deleted(sender, instance, **kwargs):
    identity_changed(instance.pk)


class HeartbeatWriter:
    """Buffers the latest heartbeat values per agent and writes them in one transaction."""

    def __init__(self):
        self._pending: dict = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, agent_id, values: dict) -> None:
        with self._lock:
            self._pending.setdefault(agent_id, {}).update(values)
        if settings.HEARTBEAT_FLUSH_SECONDS <= 0:
            self.flush()
        elif self._thread is None:
            self._start()

    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write what is buffered; on failure it stays buffered (newer values win) and the error is raised."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        by_fields = defaultdict(list)
        for agent_id, values in batch.items():
            by_fields[tuple(values)].append((agent_id, values))
        try:
            # One commit for the whole batch (a single heartbeat needs no transaction of its own).
            with transaction.atomic(durable=False) if len(batch) > 1 else nullcontext(), connection.cursor() as cursor:
                for fields, rows in by_fields.items():
                    cursor.executemany(_update_sql(fields), [_params(agent_id, values) for agent_id, values in rows])
        except Exception:
            with self._lock:
                for agent_id, values in batch.items():
                    self._pending[agent_id] = {**values, **self._pending.get(agent_id, {})}
            raise
        return len(batch)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="heartbeat-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(settings.HEARTBEAT_FLUSH_SECONDS)
            try:
                close_old_connections()
                self.flush()
            except Exception:
                logger.exception("could not write heartbeats; retrying at the next flush")


_sql_cache: dict[tuple, str] = {}


def _update_sql(fields: tuple[str, ...]) -> str:
    sql = _sql_cache.get(fields)
    if sql is None:
        meta, qn = Agent._meta, connection.ops.quote_name
        assignments = ", ".join(f"{qn(meta.get_field(name).column)} = %s" for name in fields)
        # Only quoted identifiers from the model's metadata are interpolated; values are parameters.
        sql = _sql_cache[fields] = f"UPDATE {qn(meta.db_table)} SET {assignments} WHERE {qn(meta.pk.column)} = %s"  # noqa: S608
    return sql


def _params(agent_id, values: dict) -> list:
    meta = Agent._meta
    params = [meta.get_field(name).get_db_prep_save(value, connection) for name, value in values.items()]
    params.append(meta.pk.get_db_prep_value(agent_id, connection))
    return params


writer = HeartbeatWriter()


@atexit.register
def _flush_at_exit():
    try:
        writer.flush()
    except Exception:
        logger.exception("could not write the last heartbeats at exit")
