"""Heartbeats: acknowledged from the shared cache, written to the database before the answer.

A heartbeat needs to know two things at once: that the agent belongs to the key's
organization and its current config hash (the answer). Both come from a small identity record
in the shared cache (one round trip; the database on a miss). The write (status, time, address,
host metrics, config report) goes through the group-commit writer below: an acknowledged
heartbeat is committed, and the heartbeats that arrive together share one transaction.

Identity records live in the shared cache like API-key records (logfleet.shared_cache).
"""

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, connection
from django.db.models.signals import post_delete
from django.dispatch import receiver

from agents.models import Agent
from logfleet import shared_cache
from logfleet.errors import Unavailable

logger = logging.getLogger("logfleet.heartbeats")

IDENTITY_TTL = 600  # seconds
_GONE = "gone"  # cached for deleted agents
# How long a request waits for the transaction of the batch it joined before it answers 503
# (the database hangs); its heartbeat may still be written, which the agent repeats anyway.
WAIT_SECONDS = 15


@dataclass(frozen=True)
class AgentIdentity:
    organization_id: str
    config_hash: str


def identity_key(agent_id) -> str:
    return f"agent-identity:{agent_id}"


def _load(agent_id) -> tuple | str:
    row = Agent.objects.filter(pk=agent_id).values_list("organization_id", "config_hash").first()
    return (str(row[0]), row[1]) if row else _GONE


def agent_identity(agent_id) -> AgentIdentity | None:
    record = shared_cache.read_through(identity_key(agent_id), lambda: _load(agent_id), IDENTITY_TTL)
    if record == _GONE:
        return None
    return AgentIdentity(*record)


def identity_changed(agent_id) -> None:
    """The agent's config hash changed or the agent is gone."""
    shared_cache.refresh_after_commit(identity_key(agent_id), lambda: _load(agent_id), IDENTITY_TTL)


@receiver(post_delete, sender=Agent, dispatch_uid="agents-identity-on-delete")
def _agent_deleted(sender, instance, **kwargs):
    identity_changed(instance.pk)


class _Batch:
    """The heartbeats that will share one transaction; the requests that joined it wait for it."""

    __slots__ = ("done", "failures", "rows")

    def __init__(self):
        self.rows: dict = {}
        self.done = False
        self.failures: dict = {}


class HeartbeatWriter:
    """Group commit: every heartbeat is written before it is answered, and the heartbeats that
    arrive while a transaction is being written share the next one.

    A request adds its row to the open batch. If no batch is being written, it takes the open
    batch (its own row and everything that joined it) and writes it in one transaction; otherwise
    it waits until the batch it joined is committed, by whichever request took it. A fleet then
    costs one round trip per batch, not one per heartbeat, and an acknowledged heartbeat is in
    the database, visible to every reader on every server process.

    A row the database refuses never blocks the others: when a batch fails, its rows are written
    one by one, and only the request of a failing row gets the error.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._open = _Batch()
        self._writing = False

    def submit(self, agent_id, values: dict) -> None:
        """Write `values` for the agent; returns once they are committed, or raises their error."""
        with self._cond:
            batch = self._open
            batch.rows.setdefault(agent_id, {}).update(values)
            while not batch.done:
                if not self._writing:
                    # The batch we joined is the open one (a taken batch is written before
                    # `_writing` drops): take it.
                    self._writing = True
                    self._open = _Batch()
                    break
                if not self._cond.wait(timeout=WAIT_SECONDS):
                    raise Unavailable("The database did not commit the heartbeat in time; retry shortly")
        if not batch.done:
            try:
                batch.failures = write_batch(batch.rows)
            finally:
                with self._cond:
                    batch.done = True
                    self._writing = False
                    self._cond.notify_all()
        error = batch.failures.get(agent_id)
        if error is not None:
            raise error


def write_batch(rows: dict) -> dict:
    """Write {agent id: values} in one statement per set of fields; if the database refuses it, each
    row on its own. The failures by agent (every row's, when the database is down)."""
    try:
        _update(rows.items())
        return {}
    except Exception as exc:
        if len(rows) == 1 or not _is_row_error(exc):
            return dict.fromkeys(rows, exc)
    failures = {}
    for agent_id, values in rows.items():
        try:
            _update([(agent_id, values)])
        except Exception as exc:
            logger.error("heartbeat of agent %s refused by the database, not written: %s", agent_id, exc)
            failures[agent_id] = exc
    return failures


def _is_row_error(exc: Exception) -> bool:
    """A refusal of a value (too long, a NUL, a constraint), not of the connection."""
    return not isinstance(exc, (OperationalError, InterfaceError))


def _update(rows) -> None:
    """One UPDATE ... FROM (VALUES ...) per set of reported fields: a single statement is its own
    transaction, so a batch costs one round trip and no BEGIN/COMMIT."""
    by_fields = defaultdict(list)
    for agent_id, values in rows:
        by_fields[tuple(values)].append((agent_id, values))
    with connection.cursor() as cursor:
        for fields, group in by_fields.items():
            for start in range(0, len(group), MAX_ROWS_PER_STATEMENT):
                chunk = group[start : start + MAX_ROWS_PER_STATEMENT]
                params = [param for agent_id, values in chunk for param in _params(agent_id, values)]
                cursor.execute(_update_sql(fields, len(chunk)), params)


# Placeholders per statement stay far below PostgreSQL's 65 535 and SQLite's 32 766.
MAX_ROWS_PER_STATEMENT = 500
_sql_cache: dict[tuple, tuple[str, str]] = {}


def _update_sql(fields: tuple[str, ...], count: int) -> str:
    cached = _sql_cache.get(fields)
    if cached is None:
        meta, qn = Agent._meta, connection.ops.quote_name
        columns = [meta.pk, *(meta.get_field(name) for name in fields)]
        if connection.vendor == "postgresql":
            # VALUES has no column types of its own: cast each placeholder to its column's type.
            row = "(" + ", ".join(f"%s::{column.db_type(connection)}" for column in columns) + ")"
        else:
            row = "(" + ", ".join("%s" for _ in columns) + ")"
        names = ", ".join(qn(column.column) for column in columns)
        assignments = ", ".join(f"{qn(column.column)} = v.{qn(column.column)}" for column in columns[1:])
        table, pk = qn(meta.db_table), qn(meta.pk.column)
        # Only quoted identifiers and column types from the model's metadata are interpolated.
        head = (
            f"WITH v ({names}) AS (VALUES {{rows}}) UPDATE {table} SET {assignments} FROM v WHERE {table}.{pk} = v.{pk}"  # noqa: S608
        )
        cached = _sql_cache[fields] = (head, row)
    head, row = cached
    return head.replace("{rows}", ", ".join([row] * count))


def _params(agent_id, values: dict) -> list:
    meta = Agent._meta
    params = [meta.pk.get_db_prep_value(agent_id, connection)]
    params.extend(meta.get_field(name).get_db_prep_save(value, connection) for name, value in values.items())
    return params


writer = HeartbeatWriter()
